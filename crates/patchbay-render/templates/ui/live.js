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

// The overview's latest events: new ones from the same stream are added at
// the top of the list (as text: nothing from an event is read as markup),
// keeping the newest 50.
(function () {
  var list = document.getElementById('events');
  var state = document.getElementById('events-state');
  if (!list || !window.EventSource) return;
  var source = new EventSource('/ui/events?after=' + encodeURIComponent(list.getAttribute('data-cursor')));
  source.onopen = function () { state.textContent = 'live: connected'; };
  source.onerror = function () { state.textContent = 'live: reconnecting…'; };
  source.onmessage = function (m) {
    var e;
    try { e = JSON.parse(m.data); } catch (err) { return; }
    var li = document.createElement('li');
    var time = document.createElement('time');
    time.textContent = e.at;
    var kind = document.createElement('code');
    kind.textContent = e.kind;
    li.appendChild(time);
    li.appendChild(document.createTextNode(' '));
    li.appendChild(kind);
    li.appendChild(document.createTextNode(' ' + (e.summary || '')));
    list.insertBefore(li, list.firstChild);
    while (list.children.length > 50) list.removeChild(list.lastChild);
    var none = document.getElementById('no-events');
    if (none) none.remove();
    state.textContent = 'live: updated ' + new Date().toLocaleTimeString();
  };
})();

// A page whose figures are still being computed (a large fleet's first
// rollup, see patchbay_app::rollup): load it again every few seconds until
// the server has them.
(function () {
  var p = document.getElementById('pending');
  if (!p) return;
  var every = parseInt(p.getAttribute('data-retry'), 10) || 5;
  setTimeout(function () { location.reload(); }, every * 1000);
})();
