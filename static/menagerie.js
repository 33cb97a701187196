// Keyboard shortcuts and drag-and-drop, layered over plain links and forms (everything works without this file).
// An element with data-key="ArrowLeft" (a key name, or several separated by spaces) is clicked on that key.
(function () {
  function typing(e) {
    const t = e.target;
    return t && (t.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(t.tagName));
  }
  document.addEventListener("keydown", function (e) {
    if (e.ctrlKey || e.metaKey || e.altKey || typing(e)) return;
    if (e.key === "?") {
      const help = document.getElementById("shortcut-help");
      if (help) help.hidden = !help.hidden;
      return;
    }
    const targets = Array.from(document.querySelectorAll("[data-key]")).filter(function (el) {
      return el.dataset.key.split(" ").indexOf(e.key) >= 0 && !el.disabled && el.offsetParent !== null;
    });
    if (targets.length) {
      e.preventDefault();
      targets[0].click();
    }
  });

  // Drop files anywhere on a .dropzone to put them in its file input.
  document.addEventListener("dragover", function (e) {
    const zone = e.target.closest && e.target.closest(".dropzone");
    if (zone) { e.preventDefault(); zone.classList.add("over"); }
  });
  document.addEventListener("dragleave", function (e) {
    const zone = e.target.closest && e.target.closest(".dropzone");
    if (zone) zone.classList.remove("over");
  });
  document.addEventListener("drop", function (e) {
    const zone = e.target.closest && e.target.closest(".dropzone");
    if (!zone) return;
    e.preventDefault();
    zone.classList.remove("over");
    const input = zone.querySelector("input[type=file]");
    input.files = e.dataTransfer.files;
    input.dispatchEvent(new Event("change", {bubbles: true}));
  });
  document.addEventListener("change", function (e) {
    if (e.target.matches && e.target.matches(".dropzone input[type=file]")) {
      const out = e.target.closest(".dropzone").querySelector(".chosen");
      if (out) out.textContent = e.target.files.length + " file(s) chosen";
    }
  });
})();
