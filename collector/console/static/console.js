// setdiag console: live countdowns, live queue rows, bundle progress and
// keyboard shortcuts. No inline script anywhere (the pages' CSP forbids
// it); everything here is progressive: without it the pages still work.
(function () {
  'use strict';
  var lang = document.body.getAttribute('data-lang') === 'en' ? 'en' : 'ru';
  var csrf = document.body.getAttribute('data-csrf') || '';
  var words = {
    ru: { d: ' д ', h: ' ч ', min: ' мин ', s: ' с', overdue: 'просрочен на ', changed: 'Заявки изменились' },
    en: { d: ' d ', h: ' h ', min: ' min ', s: ' s', overdue: 'overdue by ', changed: 'Tickets changed' }
  }[lang];

  function two(v) { return v < 10 ? '0' + v : '' + v; }
  function span(ms) {
    if (ms < 0) ms = -ms;
    var s = Math.floor(ms / 1000);
    var d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
    if (d > 0) return d + words.d + h + words.h.trim();
    if (h > 0) return h + words.h + two(m) + words.min.trim();
    if (m > 0) return m + words.min + two(sec) + words.s;
    return sec + words.s;
  }

  // Countdowns: only running clocks that are not paused move, by the time
  // that really passed since the server said how much was left (a tab in
  // the background gets few timer ticks). Whether a business-hours clock is
  // paused changes at 10:00 and 19:00: the rows are fetched again every
  // minute, the ticket page every five, and they say it anew.
  function tick() {
    var now = Date.now();
    var clocks = document.querySelectorAll('.clock[data-running="true"]');
    for (var i = 0; i < clocks.length; i++) {
      var c = clocks[i];
      if (c.getAttribute('data-paused') === 'true') continue;
      if (c.__base === undefined) { c.__base = parseInt(c.getAttribute('data-remaining-ms'), 10); c.__t0 = now; }
      var left = c.__base - (now - c.__t0);
      c.textContent = left < 0 ? words.overdue + span(left) : span(left);
      if (left < 0 && !c.classList.contains('clock-breached')) {
        c.classList.remove('clock-ok', 'clock-warning');
        c.classList.add('clock-breached');
        var row = c.closest('tr.ticket');
        if (row) { row.classList.remove('warning'); row.classList.add('breached'); }
      }
    }
  }
  setInterval(tick, 1000);

  function announce(text) {
    var live = document.getElementById('live');
    if (live) live.textContent = text;
  }

  // The queue's rows, fetched again when the live stream says so.
  var table = document.getElementById('queue');
  var refreshing = false, again = false;
  // Rows that appeared while the page was open stay marked new for a minute,
  // through the refreshes that follow (a new ticket brings several events).
  var firstSeen = {};
  if (table) {
    var atLoad = table.querySelectorAll('tr.ticket');
    for (var l = 0; l < atLoad.length; l++) firstSeen[atLoad[l].getAttribute('data-id')] = 0;
  }
  function refreshRows() {
    if (!table) return;
    if (refreshing) { again = true; return; }
    refreshing = true;
    var checked = {};
    var boxes = table.querySelectorAll('tr.ticket input[type=checkbox]:checked');
    for (var j = 0; j < boxes.length; j++) checked[boxes[j].value] = true;
    fetch(table.getAttribute('data-rows'), { credentials: 'same-origin' }).then(function (r) {
      if (r.status === 401) { location.href = '/console/signin'; return null; }
      var count = r.headers.get('X-Ticket-Count');
      return r.text().then(function (html) { return { html: html, count: count }; });
    }).then(function (res) {
      if (!res) return;
      document.getElementById('queue-rows').innerHTML = res.html;
      var counter = document.getElementById('queue-count');
      if (counter && res.count !== null) counter.textContent = res.count;
      var rows = table.querySelectorAll('tr.ticket');
      for (var k = 0; k < rows.length; k++) {
        var id = rows[k].getAttribute('data-id');
        if (firstSeen[id] === undefined) firstSeen[id] = Date.now();
        if (firstSeen[id] && Date.now() - firstSeen[id] < 60000) rows[k].classList.add('new');
        if (checked[id]) rows[k].querySelector('input[type=checkbox]').checked = true;
      }
    }).catch(function () {}).then(function () {
      refreshing = false;
      if (again) { again = false; refreshRows(); }
    });
  }

  if (table) setInterval(refreshRows, 60000);

  var ticketTitle = document.getElementById('ticket-title');
  function typing() {
    var fields = document.querySelectorAll('textarea, input[type=text], input:not([type])');
    for (var i = 0; i < fields.length; i++) if (fields[i].value) return true;
    return false;
  }

  if (window.EventSource && (table || ticketTitle)) {
    var es = new EventSource('/console/events');
    es.addEventListener('ticket', function (e) {
      var id;
      try { id = String(JSON.parse(e.data).id); } catch (err) { return; }
      if (table) { refreshRows(); announce(words.changed); }
      if (ticketTitle && ticketTitle.getAttribute('data-ticket') === id) {
        if (typing()) announce(words.changed); else location.reload();
      }
    });
  }

  if (ticketTitle) setInterval(function () { if (!typing()) location.reload(); }, 300000);

  // Bundles in progress on a ticket page: their progress, until complete.
  var pending = document.querySelectorAll('tr.bundle[data-state="requested"], tr.bundle[data-state="building"], tr.bundle[data-state="transferring"]');
  function poll(row) {
    var id = row.getAttribute('data-bundle');
    fetch('/console/bundles/' + encodeURIComponent(id) + '/status', { credentials: 'same-origin' })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (s) {
        if (!s) return;
        var bar = row.querySelector('progress');
        if (bar) bar.value = parseInt(s.percent, 10);
        var pct = row.querySelector('.pct');
        if (pct) pct.textContent = s.percent + '%';
        var st = row.querySelector('.bundle-state');
        if (st) st.textContent = s.state_label;
        row.setAttribute('data-state', s.state);
        if (s.state === 'complete' || s.state === 'failed') {
          if (!typing()) location.reload();
          return;
        }
        setTimeout(function () { poll(row); }, 1500);
      }).catch(function () { setTimeout(function () { poll(row); }, 3000); });
  }
  for (var p = 0; p < pending.length; p++) poll(pending[p]);

  // Select all.
  var all = document.getElementById('select-all');
  if (all) all.addEventListener('change', function () {
    var boxes = document.querySelectorAll('tr.ticket input[type=checkbox]');
    for (var i = 0; i < boxes.length; i++) boxes[i].checked = all.checked;
  });

  // Keyboard: j/k move between tickets, x selects, a acknowledges the
  // selected, / goes to the store search. Not while typing.
  var current = -1;
  document.addEventListener('keydown', function (e) {
    var t = e.target;
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    if (t && (t.tagName === 'INPUT' || t.tagName === 'TEXTAREA' || t.tagName === 'SELECT')) return;
    var rows = document.querySelectorAll('tr.ticket');
    if (e.key === 'j' || e.key === 'k') {
      if (!rows.length) return;
      current = Math.max(0, Math.min(rows.length - 1, current + (e.key === 'j' ? 1 : -1)));
      for (var i = 0; i < rows.length; i++) rows[i].classList.toggle('current', i === current);
      var link = rows[current].querySelector('a.ticket-link');
      if (link) link.focus();
      e.preventDefault();
    } else if (e.key === 'x' && current >= 0 && rows[current]) {
      var box = rows[current].querySelector('input[type=checkbox]');
      if (box) box.checked = !box.checked;
      e.preventDefault();
    } else if (e.key === 'a') {
      var ack = document.getElementById('bulk-ack');
      if (ack && document.querySelector('tr.ticket input[type=checkbox]:checked')) { ack.click(); e.preventDefault(); }
      var one = document.getElementById('do-ack');
      if (!ack && one) { one.click(); e.preventDefault(); }
    } else if (e.key === '/') {
      var search = document.getElementById('store-filter');
      if (search) { search.focus(); e.preventDefault(); }
    }
  });
  void csrf;
})();
