// Play with Huggy: draws the dog and the stick the server streams (the server steps the dog, the model acts in a
// child process there), and sends where the visitor clicks as the stick's new place, in metres.
(function () {
  "use strict";
  var canvas = document.getElementById("field");
  var ctx = canvas.getContext("2d");
  var sticksEl = document.getElementById("sticks");
  var statusEl = document.getElementById("status");
  var half = 8;  // metres from the centre to the field's edge (the hello message says)
  var proto = location.protocol === "https:" ? "wss://" : "ws://";
  var ws = new WebSocket(proto + location.host + canvas.dataset.ws);
  window.deeprlHuggy = {frames: 0, last: null};  // read by the browser test

  function px(x) { return (x + half) / (2 * half) * canvas.width; }
  function py(y) { return (half - y) / (2 * half) * canvas.height; }
  var scale = function () { return canvas.width / (2 * half); };

  function draw(s) {
    ctx.fillStyle = "#cfe8b0";
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    ctx.strokeStyle = "#b5d395";
    for (var g = -half; g <= half; g += 2) {
      ctx.beginPath(); ctx.moveTo(px(g), 0); ctx.lineTo(px(g), canvas.height); ctx.stroke();
      ctx.beginPath(); ctx.moveTo(0, py(g)); ctx.lineTo(canvas.width, py(g)); ctx.stroke();
    }
    // the stick
    ctx.save();
    ctx.translate(px(s.stick[0]), py(s.stick[1]));
    ctx.rotate(-0.7);
    ctx.fillStyle = "#73401a";
    ctx.fillRect(-0.25 * scale(), -0.04 * scale(), 0.5 * scale(), 0.08 * scale());
    ctx.restore();
    // the feet, then the trunk and head along the dog's heading
    ctx.fillStyle = "#b07a2a";
    s.feet.forEach(function (f) {
      ctx.beginPath(); ctx.arc(px(f[0]), py(f[1]), 0.05 * scale(), 0, 2 * Math.PI); ctx.fill();
    });
    ctx.save();
    ctx.translate(px(s.dog[0]), py(s.dog[1]));
    ctx.rotate(-s.dog[2]);
    ctx.fillStyle = "#f2bf40";
    ctx.fillRect(-0.3 * scale(), -0.12 * scale(), 0.6 * scale(), 0.24 * scale());
    ctx.fillStyle = "#f8d160";
    ctx.fillRect(0.3 * scale(), -0.07 * scale(), 0.16 * scale(), 0.14 * scale());
    ctx.restore();
  }

  canvas.addEventListener("click", function (ev) {
    var r = canvas.getBoundingClientRect();
    var x = (ev.clientX - r.left) / r.width * 2 * half - half;
    var y = half - (ev.clientY - r.top) / r.height * 2 * half;
    if (ws.readyState === 1) { ws.send(JSON.stringify({stick: [x, y]})); }
  });

  ws.onmessage = function (ev) {
    var m = JSON.parse(ev.data);
    if (m.error) { statusEl.textContent = m.error; return; }
    if (m.hello) { half = m.hello.field; statusEl.textContent = "Click the field to throw the stick."; return; }
    if (m.over) { statusEl.textContent = "Game over: " + m.over.sticks + " sticks fetched."; return; }
    window.deeprlHuggy.frames += 1;
    window.deeprlHuggy.last = m;
    sticksEl.textContent = "Sticks fetched: " + m.sticks;
    draw(m);
  };
  ws.onclose = function () {
    if (statusEl.textContent.indexOf("Click") === 0) { statusEl.textContent = "The game ended."; }
  };
}());
