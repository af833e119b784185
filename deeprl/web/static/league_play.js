// The live game page: draws the state the server streams (the server steps the game). When a person plays
// (data-mode="play") it sends the keys held down; when two models play each other (data-mode="watch") it sends nothing.
(function () {
  "use strict";
  var canvas = document.getElementById("field");
  var ctx = canvas.getContext("2d");
  var scoreEl = document.getElementById("score");
  var statusEl = document.getElementById("status");
  var KEYMAP = {ArrowUp: "up", w: "up", W: "up", ArrowDown: "down", s: "down", S: "down",
                ArrowLeft: "left", a: "left", A: "left", ArrowRight: "right", d: "right", D: "right",
                q: "strafe_left", Q: "strafe_left", e: "strafe_right", E: "strafe_right"};
  var watching = canvas.dataset.mode === "watch";
  var live = watching ? "Live: " : "Playing: ";
  var held = {};
  var geo = null;
  var proto = location.protocol === "https:" ? "wss://" : "ws://";
  var ws = new WebSocket(proto + location.host + canvas.dataset.ws);
  window.deeprlPlay = {frames: 0, last: null};  // read by the browser test

  function sendKeys() {
    if (ws.readyState === 1) { ws.send(JSON.stringify({keys: Object.keys(held)})); }
  }
  function key(ev, down) {
    var k = KEYMAP[ev.key];
    if (!k) { return; }
    ev.preventDefault();
    if (down) { held[k] = true; } else { delete held[k]; }
    sendKeys();
  }
  if (!watching) {
    document.addEventListener("keydown", function (ev) { key(ev, true); });
    document.addEventListener("keyup", function (ev) { key(ev, false); });
  }

  function toCanvas(x, y) {
    var s = canvas.width / (geo.field[0] + 2);
    return [canvas.width / 2 + x * s, canvas.height / 2 - y * s, s];
  }
  function disc(x, y, r, fill, ring) {
    var p = toCanvas(x, y);
    ctx.beginPath();
    ctx.arc(p[0], p[1], r * p[2], 0, 2 * Math.PI);
    ctx.fillStyle = fill;
    ctx.fill();
    if (ring) { ctx.lineWidth = 3; ctx.strokeStyle = "#fff"; ctx.stroke(); }
  }
  function draw(st) {
    var a = toCanvas(-geo.field[0] / 2, geo.field[1] / 2), b = toCanvas(geo.field[0] / 2, -geo.field[1] / 2);
    ctx.fillStyle = "#2f7d32";
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    ctx.strokeStyle = "#fff";
    ctx.lineWidth = 2;
    ctx.strokeRect(a[0], a[1], b[0] - a[0], b[1] - a[1]);
    var g1 = toCanvas(-geo.field[0] / 2, geo.goal), g2 = toCanvas(geo.field[0] / 2, -geo.goal);
    ctx.fillStyle = "#3d6fd6";
    ctx.fillRect(g1[0] - 8, g1[1], 8, g2[1] - g1[1]);
    ctx.fillStyle = "#8a3fc4";
    ctx.fillRect(g2[0], g1[1], 8, g2[1] - g1[1]);
    for (var i = 0; i < 4; i++) {
      var p = st.pos[i];
      disc(p[0], p[1], geo.agent, i < 2 ? "#3d6fd6" : "#8a3fc4", geo.human && i === 0);
      var c = toCanvas(p[0], p[1]);
      ctx.beginPath();
      ctx.moveTo(c[0], c[1]);
      ctx.lineTo(c[0] + Math.cos(st.angle[i]) * geo.agent * c[2], c[1] - Math.sin(st.angle[i]) * geo.agent * c[2]);
      ctx.strokeStyle = "#fff";
      ctx.stroke();
    }
    disc(st.ball[0], st.ball[1], geo.ball, "#f5f5f5", false);
  }
  ws.onmessage = function (ev) {
    var msg = JSON.parse(ev.data);
    if (msg.error) { statusEl.textContent = msg.error; return; }
    if (msg.hello) { geo = msg.hello; statusEl.textContent = live + geo.seconds + " s."; canvas.focus(); return; }
    if (msg.over) { statusEl.textContent = "Game over."; return; }
    window.deeprlPlay.frames += 1;
    window.deeprlPlay.last = msg;
    scoreEl.textContent = "Blue " + msg.score[0] + " – " + msg.score[1] + " Purple";
    statusEl.textContent = live + Math.max(0, geo.seconds - msg.t).toFixed(0) + " s left.";
    draw(msg);
  };
  ws.onclose = function () { if (statusEl.textContent.indexOf(live) === 0) { statusEl.textContent = "Disconnected."; } };
}());
