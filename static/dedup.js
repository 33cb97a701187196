// Keys of the duplicate groups page (/duplicates/): focus moves between groups (j/k); Enter or a submits the
// current group's form; ←/→ or 1–9 choose its keeper.
// Loaded once in <head> on every page, like menagerie.js: it only listens on document and does nothing unless the
// page holds .dup-groups, so it works the same after a full load and after a boosted (htmx) navigation.
(function () {
  function groups() { return Array.from(document.querySelectorAll(".dup-group:not(.resolved)")); }
  function current() {
    const gs = groups();
    return gs.find(function (g) { return g.classList.contains("current"); }) || gs[0];
  }
  function setCurrent(g) {
    document.querySelectorAll(".dup-group.current").forEach(function (x) { x.classList.remove("current"); });
    if (g) { g.classList.add("current"); g.focus({preventScroll: true}); g.scrollIntoView({block: "nearest"}); }
  }
  let nextIndex = null;
  document.addEventListener("keydown", function (e) {
    if (!document.querySelector(".dup-groups") || e.ctrlKey || e.metaKey || e.altKey) return;
    const t = e.target;
    if (t && (t.isContentEditable || /^(TEXTAREA|SELECT)$/.test(t.tagName) ||
              (t.tagName === "INPUT" && t.type !== "radio"))) return;
    const gs = groups();
    if (!gs.length) return;
    const g = current(), i = gs.indexOf(g);
    if (e.key === "j" || e.key === "k") {
      e.preventDefault();
      setCurrent(gs[Math.max(0, Math.min(gs.length - 1, i + (e.key === "j" ? 1 : -1)))]);
      return;
    }
    const radios = Array.from(g.querySelectorAll("input[name=keeper]"));
    const chosen = radios.findIndex(function (r) { return r.checked; });
    let pick = null;
    if (e.key === "ArrowLeft") pick = Math.max(0, chosen - 1);
    else if (e.key === "ArrowRight") pick = Math.min(radios.length - 1, chosen + 1);
    else if (/^[1-9]$/.test(e.key)) pick = Number(e.key) - 1;
    if (pick !== null) {
      e.preventDefault();
      if (radios[pick]) radios[pick].checked = true;
      setCurrent(g);
      return;
    }
    if (e.key === "Enter" || e.key === "a") {
      e.preventDefault();
      nextIndex = i;
      g.querySelector("form").requestSubmit();
    }
  });
  document.addEventListener("htmx:afterSettle", function () {
    if (nextIndex === null) return;
    const gs = groups();
    setCurrent(gs[Math.min(nextIndex, gs.length - 1)]);
    nextIndex = null;
  });
})();
