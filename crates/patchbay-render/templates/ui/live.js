// The live rollout board: listens to the server's event stream
// (/ui/events, server-sent events) and, when an event concerns this
// deployment, fetches the page again and swaps the board in place. The
// browser's EventSource reconnects by itself and resumes after the last event
// id it saw (the server honours Last-Event-ID), so no update is lost.
(function () {
  var board = document.getElementById('board');
  var state = document.getElementById('live-state');
  if (!board || !window.EventSource) return;
  var id = board.getAttribute('data-deployment');
  var source = new EventSource('/ui/events?after=' + encodeURIComponent(board.getAttribute('data-cursor')));
  var busy = false, again = false;
  function refresh() {
    if (busy) { again = true; return; }
    busy = true;
    fetch(location.pathname, { credentials: 'same-origin' }).then(function (r) {
      if (!r.ok) throw new Error('HTTP ' + r.status);
      return r.text();
    }).then(function (html) {
      var doc = new DOMParser().parseFromString(html, 'text/html');
      var fresh = doc.getElementById('board');
      if (fresh) {
        board.innerHTML = fresh.innerHTML;
        state = document.getElementById('live-state');
        state.textContent = 'live: updated ' + new Date().toLocaleTimeString();
      }
    }).catch(function (e) {
      if (state) state.textContent = 'live: update failed (' + e.message + ')';
    }).then(function () {
      busy = false;
      if (again) { again = false; refresh(); }
    });
  }
  source.onopen = function () { if (state) state.textContent = 'live: connected'; };
  source.onerror = function () { if (state) state.textContent = 'live: reconnecting…'; };
  source.onmessage = function (m) {
    try {
      var e = JSON.parse(m.data);
      if (e.deployment === id) refresh();
    } catch (err) { /* not ours */ }
  };
})();
