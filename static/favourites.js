/* Favourites: star any run picture from any gallery with a click or the F key (trainer/favourites.py keeps the list).
   Each star is a small form (trainer/_favourite_toggle.html) that htmx swaps in place and that posts as a plain form
   without this file. F stars the picture in the open lightbox (a visible element carrying data-run and data-rel
   that is not a tile), else the focused tile (a gallery's .sample, or this feature's own cards, with data-run and
   data-rel). After a swap, every counter of the run (.favourites-count) and every other star of the same picture
   take the new state. */
(function () {
  const TILES = ".sample, .gen-card, .fav-tile, .fav-pick";
  function typing(e) {
    const t = e.target;
    return t && (t.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(t.tagName));
  }
  function visible(el) {
    return el.offsetParent !== null || el.getClientRects().length > 0;
  }
  function openLightbox() {
    return Array.from(document.querySelectorAll("[data-run][data-rel]")).find(function (el) {
      return !el.matches(TILES) && !el.closest(TILES) && el.tagName !== "FORM" && !el.hidden && visible(el);
    });
  }
  function focusedTile() {
    const active = document.activeElement;
    const tile = active && active.closest ? active.closest(TILES) : null;
    return tile && tile.dataset.run && tile.dataset.rel ? tile : null;
  }
  function starsOf(run, rel) {
    return Array.from(document.querySelectorAll("form.fav-toggle")).filter(function (f) {
      return f.dataset.run === run && f.dataset.rel === rel;
    });
  }
  function csrfToken() {
    try { return JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRFToken"] || ""; }
    catch (err) { return ""; }
  }

  // Without a star on the page for that picture (a lightbox of a page that shows none), post it directly.
  function postToggle(run, rel) {
    const body = new URLSearchParams({file: rel, action: "toggle"});
    return fetch("/stickers/runs/" + encodeURIComponent(run) + "/favourites", {
      method: "POST", body: body, credentials: "same-origin",
      headers: {"X-CSRFToken": csrfToken(), "HX-Request": "true"}
    }).then(function (r) { return r.ok ? r.text() : null; }).then(function (html) {
      if (!html) return;
      const holder = document.createElement("div");
      holder.innerHTML = html.trim();
      const star = holder.querySelector("form.fav-toggle");
      if (star) sync(star);
    });
  }

  document.addEventListener("keydown", function (e) {
    if ((e.key !== "f" && e.key !== "F") || e.ctrlKey || e.metaKey || e.altKey || typing(e)) return;
    const target = openLightbox() || focusedTile();
    if (!target) return;
    e.preventDefault();
    const run = target.dataset.run, rel = target.dataset.rel;
    const star = starsOf(run, rel).filter(visible)[0] || starsOf(run, rel)[0];
    if (star) {
      star.requestSubmit();
    } else {
      postToggle(run, rel);
    }
  });

  // A star came back from the server: its run's counters and the picture's other stars follow it.
  function sync(star) {
    const run = star.dataset.run, rel = star.dataset.rel;
    document.querySelectorAll(".favourites-count").forEach(function (c) {
      if (c.dataset.run !== run) return;
      const n = c.querySelector(".n");
      if (n) n.textContent = star.dataset.count;
    });
    starsOf(run, rel).forEach(function (other) {
      if (other === star || (other.className === star.className && other.dataset.count === star.dataset.count)) return;
      const copy = star.cloneNode(true);
      other.replaceWith(copy);
      if (window.htmx) window.htmx.process(copy);
    });
    document.querySelectorAll("[data-run][data-rel]:not(form)").forEach(function (el) {
      if (el.dataset.run === run && el.dataset.rel === rel) el.dataset.favourite = String(star.classList.contains("on"));
    });
  }
  document.addEventListener("htmx:load", function (e) {
    const el = e.target;
    if (el && el.matches && el.matches("form.fav-toggle")) sync(el);
  });
})();
