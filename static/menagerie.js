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

  // Ranking, "put all four in order" (curator/ranking, _screen.html): each key (a .order-pick button, 1–4) gives
  // its image the next place; once all but one have a place, the last is implied and the order is sent (htmx
  // posts the form). Backspace (.order-back) takes back the last place. Without this, the place menus do it.
  function orderForm(el) {
    const form = el.closest("form");
    return form && form.querySelector(".order-field") ? form : null;
  }
  function showPlaces(form, order) {
    form.querySelectorAll(".order-pick").forEach(function (button) {
      const place = order.indexOf(button.dataset.id) + 1;
      const badge = button.querySelector(".rank-place");
      badge.textContent = place ? place : "";
      badge.hidden = !place;
      button.classList.toggle("placed", place > 0);
      const menu = form.querySelector('select[name="place_' + button.dataset.id + '"]');
      if (menu) menu.value = place ? String(place) : "";
    });
    form.querySelector(".order-back").hidden = order.length === 0;
  }
  document.addEventListener("click", function (e) {
    const pick = e.target.closest && e.target.closest(".order-pick, .order-back");
    const form = pick && orderForm(pick);
    if (!form) return;
    const field = form.querySelector(".order-field");
    const order = field.value ? field.value.split(",") : [];
    if (pick.classList.contains("order-back")) {
      order.pop();
    } else if (order.indexOf(pick.dataset.id) < 0) {
      order.push(pick.dataset.id);
    }
    field.value = order.join(",");
    showPlaces(form, order);
    const picks = form.querySelectorAll(".order-pick");
    if (order.length >= picks.length - 1) {
      picks.forEach(function (button) {
        if (order.indexOf(button.dataset.id) < 0) order.push(button.dataset.id);
      });
      showPlaces(form, order);
      form.requestSubmit();
    }
  });
})();
