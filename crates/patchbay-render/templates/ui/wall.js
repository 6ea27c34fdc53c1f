// Wall-screen mode: reload the page every N seconds (data-every on the
// toggle) so a NOC screen stays current; the button pauses and resumes it
// (WCAG 2.2.1: a person can stop the timing). Served from this server
// (script-src 'self'); nothing else runs on the dashboard's pages.
(function () {
  var button = document.getElementById('refresh-toggle');
  var state = document.getElementById('refresh-state');
  if (!button || !state) return;
  var every = Number(button.getAttribute('data-every')) || 30;
  var timer = null;
  function start() {
    timer = setTimeout(function () { location.reload(); }, every * 1000);
    button.textContent = 'Pause refresh';
    state.textContent = 'refreshes every ' + every + ' s';
  }
  function stop() {
    clearTimeout(timer);
    timer = null;
    button.textContent = 'Resume refresh';
    state.textContent = 'refresh paused';
  }
  button.addEventListener('click', function () { if (timer) { stop(); } else { start(); } });
  start();
})();
