// The rescue desk's only script; every page works without it.
//
// 1. The reader's time zone: the browser's IANA zone (Intl) is kept in the `desk_tz` cookie, which
//    the server reads to show SLA due times in it (a `?tz=` in the URL overrides it). When the page
//    was drawn in another zone, its list is refreshed at once in the browser's.
// 2. Self-refreshing lists: an element with `data-refresh-seconds="N"` (the queue's and the manager
//    view's list) is fetched again from the page's own URL every N seconds (the filters are in the
//    URL) and swapped in place; nothing outside it is touched, so a filter or a form being typed in
//    is kept. A refresh waits while a field inside the list has focus or a form inside it has
//    unsaved input, and while the tab is hidden; a failed fetch or a response without the list
//    (e.g. a sign-in page after the session ended) leaves the page as it is.
(function () {
  "use strict";

  var COOKIE = "desk_tz";

  function browserZone() {
    try { return Intl.DateTimeFormat().resolvedOptions().timeZone || ""; } catch (e) { return ""; }
  }

  function cookie(name) {
    var found = document.cookie.split("; ").filter(function (c) { return c.indexOf(name + "=") === 0; })[0];
    return found ? decodeURIComponent(found.slice(name.length + 1)) : "";
  }

  function dirty(form) {
    return Array.prototype.some.call(form.elements, function (el) {
      if (el.type === "checkbox" || el.type === "radio") return el.checked !== el.defaultChecked;
      if (el.tagName === "SELECT") {
        return Array.prototype.some.call(el.options, function (o) { return o.selected !== o.defaultSelected; });
      }
      if ("defaultValue" in el && el.type !== "hidden" && el.type !== "submit" && el.type !== "button") {
        return el.value !== el.defaultValue;
      }
      return false;
    });
  }

  function busy(region) {
    var active = document.activeElement;
    if (active && region.contains(active) && /^(INPUT|SELECT|TEXTAREA)$/.test(active.tagName)) return true;
    return Array.prototype.some.call(region.querySelectorAll("form"), dirty);
  }

  function refresh(region) {
    if (document.hidden || busy(region)) return Promise.resolve(false);
    return fetch(window.location.href, { credentials: "same-origin", headers: { "X-Desk-Refresh": "1" } })
      .then(function (response) { return response.ok ? response.text() : null; })
      .then(function (html) {
        if (html === null || busy(region)) return false;
        var fresh = new DOMParser().parseFromString(html, "text/html").getElementById(region.id);
        if (!fresh) return false;
        region.innerHTML = fresh.innerHTML;
        region.setAttribute("data-refreshed-at", new Date().toISOString());
        document.dispatchEvent(new CustomEvent("desk:refreshed", { detail: { id: region.id } }));
        return true;
      })
      .catch(function () { return false; });
  }

  function start() {
    var zone = browserZone();
    var regions = document.querySelectorAll("[data-refresh-seconds]");
    var drawnIn = document.body.getAttribute("data-tz") || "";
    var pinned = new URLSearchParams(window.location.search).has("tz");
    if (zone && cookie(COOKIE) !== zone) {
      document.cookie = COOKIE + "=" + zone + "; path=/; max-age=31536000; SameSite=Lax";
    }
    Array.prototype.forEach.call(regions, function (region) {
      var seconds = parseFloat(region.getAttribute("data-refresh-seconds"));
      if (zone && drawnIn && zone !== drawnIn && !pinned) refresh(region);
      if (!(seconds > 0)) return;
      window.setInterval(function () { refresh(region); }, seconds * 1000);
    });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
