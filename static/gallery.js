/* Gallery viewing: a lightbox that enlarges a sample and steps through its gallery with the keys (trainer galleries; see trainer/templates).

   A sample tile is `.sample[data-run][data-rel][data-src][data-caption][data-nearest]` inside an element with
   `data-gallery`; its rows are `.row-samples`. Clicking a tile (or Enter on a focused one) opens the lightbox:
   the picture at the largest whole multiple of its size that fits (pixelated), its caption, its place. Keys:
   ←/→ the previous / next sample of the gallery, ↑/↓ the same place one row up / down (another class, or
   another epoch in a film strip), N its nearest training images, Esc closes. While open, the lightbox root carries
   `data-run` and `data-rel` of the picture shown, so other keys (favourites' F) can act on it.
   Without this file every tile is a link to the picture's own page. Listens on document only (htmx swaps bodies). */
(function () {
  "use strict";
  let current = null; // the tile shown

  function typing(e) {
    const t = e.target;
    return t && (t.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(t.tagName));
  }

  function root() {
    let box = document.getElementById("lightbox");
    if (box) return box;
    box = document.createElement("div");
    box.id = "lightbox";
    box.className = "lightbox";
    box.hidden = true;
    box.setAttribute("role", "dialog");
    box.setAttribute("aria-modal", "true");
    box.setAttribute("aria-label", "enlarged sample");
    box.tabIndex = -1;
    box.innerHTML =
      '<div class="lightbox-box">' +
      '<img class="lightbox-img" alt="">' +
      '<div class="lightbox-caption"></div>' +
      '<div class="lightbox-bar">' +
      '<button type="button" class="small lightbox-prev" aria-label="previous sample">← <kbd>←</kbd></button>' +
      '<span class="lightbox-count"></span>' +
      '<button type="button" class="small lightbox-next" aria-label="next sample"><kbd>→</kbd> →</button>' +
      '<button type="button" class="small lightbox-near">Nearest training images <kbd>N</kbd></button>' +
      '<a class="button small quiet lightbox-page">Open its page</a>' +
      '<button type="button" class="small lightbox-close">Close <kbd>Esc</kbd></button>' +
      "</div>" +
      '<div class="lightbox-nearest" aria-live="polite"></div>' +
      "</div>";
    document.body.appendChild(box);
    return box;
  }

  function galleryTiles(tile) {
    const gallery = tile.closest("[data-gallery]");
    if (!gallery) return [tile];
    const key = gallery.getAttribute("data-gallery");
    return Array.from(document.querySelectorAll('[data-gallery="' + CSS.escape(key) + '"] .sample'));
  }

  function rowsOf(tiles) {
    const rows = [];
    tiles.forEach(function (t) {
      const row = t.closest(".row-samples") || t.parentElement;
      if (rows.indexOf(row) < 0) rows.push(row);
    });
    return rows;
  }

  function fit(img, natural) {
    // The largest whole multiple of the picture's size that fits the window beside the caption, the buttons and
    // the nearest images when shown (at least 1x): crisp pixels.
    const panel = root().querySelector(".lightbox-nearest").offsetHeight || 0;
    const room = Math.min(window.innerWidth - 96, window.innerHeight - 200 - panel, 640);
    const px = natural * Math.max(1, Math.floor(room / natural));
    img.style.width = px + "px";
    img.style.height = px + "px";
  }

  function show(tile) {
    const box = root();
    if (current) current.classList.remove("current");
    current = tile;
    tile.classList.add("current");
    const tiles = galleryTiles(tile);
    const img = box.querySelector(".lightbox-img");
    img.alt = tile.dataset.caption || "";
    img.addEventListener("load", function () { fit(img, img.naturalWidth || 32); }, {once: true});
    img.src = tile.dataset.src;
    if (img.complete && img.naturalWidth) fit(img, img.naturalWidth);
    box.querySelector(".lightbox-caption").textContent = tile.dataset.caption || "";
    box.querySelector(".lightbox-count").textContent = (tiles.indexOf(tile) + 1) + " / " + tiles.length;
    const link = tile.querySelector("a.sample-open");
    box.querySelector(".lightbox-page").href = link ? link.href : tile.dataset.src;
    const slot = box.querySelector(".lightbox-nearest");
    const keepNearest = slot.innerHTML !== "" && !box.hidden; // stepping with the nearest images shown: show the next one's
    slot.innerHTML = "";
    box.dataset.run = tile.dataset.run || "";
    box.dataset.rel = tile.dataset.rel || "";
    box.dataset.caption = tile.dataset.caption || "";
    const opening = box.hidden;
    box.hidden = false;
    if (opening) box.focus({preventScroll: true}); // keys and screen readers are in the dialog now
    document.body.classList.add("lightbox-open");
    if (keepNearest) nearest();
    box.dispatchEvent(new CustomEvent("lightbox:show", {bubbles: true, detail: {tile: tile}}));
  }

  function close() {
    const box = document.getElementById("lightbox");
    if (!box || box.hidden) return;
    box.hidden = true;
    delete box.dataset.run;
    delete box.dataset.rel;
    document.body.classList.remove("lightbox-open");
    if (current) {
      current.classList.remove("current");
      if (document.contains(current)) current.focus({preventScroll: false});
    }
    current = null;
  }

  function isOpen() {
    const box = document.getElementById("lightbox");
    return !!(box && !box.hidden && current);
  }

  function step(delta) {
    const tiles = galleryTiles(current);
    const i = tiles.indexOf(current);
    const next = tiles[i + delta];
    if (next) show(next);
  }

  function stepRow(delta) {
    const tiles = galleryTiles(current);
    const rows = rowsOf(tiles);
    const row = current.closest(".row-samples") || current.parentElement;
    const place = Array.from(row.querySelectorAll(".sample")).indexOf(current);
    const other = rows[rows.indexOf(row) + delta];
    if (!other) return;
    const there = other.querySelectorAll(".sample");
    if (there.length) show(there[Math.min(place, there.length - 1)]);
  }

  function refit() {
    const img = root().querySelector(".lightbox-img");
    if (img.naturalWidth) fit(img, img.naturalWidth);
  }

  function nearest() {
    const slot = root().querySelector(".lightbox-nearest");
    if (slot.innerHTML) { slot.innerHTML = ""; refit(); return; }
    const url = current.dataset.nearest;
    if (!url) return;
    const shown = current;
    fetch(url, {headers: {"HX-Request": "true"}, credentials: "same-origin"})
      .then(function (r) { return r.text(); })
      .then(function (html) {
        if (current !== shown) return; // stepped on meanwhile
        slot.innerHTML = html;
        refit();
      });
  }

  // Capture: before htmx's own listeners on the links (boost), which would otherwise open the picture's page.
  document.addEventListener("click", function (e) {
    if (e.defaultPrevented || e.button !== 0 || e.ctrlKey || e.metaKey || e.shiftKey || e.altKey) return;
    const t = e.target;
    if (!t.closest) return;
    const box = document.getElementById("lightbox");
    if (box && !box.hidden && box.contains(t)) {
      if (t.closest(".lightbox-close")) close();
      else if (t.closest(".lightbox-prev")) step(-1);
      else if (t.closest(".lightbox-next")) step(1);
      else if (t.closest(".lightbox-near")) nearest();
      else if (t === box) close(); // the dim area around the picture
      return;
    }
    const closeButton = t.closest(".nearest-close");
    if (closeButton) {
      const slot = closeButton.closest(".nearest-slot");
      if (slot) slot.innerHTML = "";
      return;
    }
    const open = t.closest(".sample a.sample-open");
    if (open && open.closest(".sample").dataset.src) {
      e.preventDefault();
      e.stopPropagation(); // before htmx's boost (a listener on the link itself) turns it into a page visit
      show(open.closest(".sample"));
    }
  }, true);

  // Capture: runs before the page's own arrow-key shortcuts (menagerie.js data-key), which the lightbox replaces
  // while it is open.
  document.addEventListener("keydown", function (e) {
    if (e.ctrlKey || e.metaKey || e.altKey || typing(e)) return;
    if (isOpen()) {
      const keys = {ArrowLeft: function () { step(-1); }, ArrowRight: function () { step(1); },
                    ArrowUp: function () { stepRow(-1); }, ArrowDown: function () { stepRow(1); },
                    Escape: close, n: nearest, N: nearest};
      if (keys[e.key]) {
        e.preventDefault();
        e.stopImmediatePropagation();
        keys[e.key]();
      }
      return;
    }
    const tile = e.target.closest && e.target.closest(".sample");
    if (!tile || !tile.dataset.src) return;
    if (e.key === "Enter" || e.key === " ") {
      e.preventDefault();
      e.stopImmediatePropagation();
      show(tile);
    } else if (e.key === "n" || e.key === "N") {
      const link = tile.querySelector(".nearest-link");
      if (link) { e.preventDefault(); e.stopImmediatePropagation(); link.click(); }
    }
  }, true);

  // A boosted navigation replaces the body: the lightbox goes with it.
  document.addEventListener("htmx:beforeSwap", function (e) {
    if (e.detail && e.detail.target === document.body) current = null;
  });
  window.addEventListener("resize", function () { if (isOpen()) refit(); });
})();
