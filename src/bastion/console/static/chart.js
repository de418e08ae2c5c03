// The equity chart: a line drawn on a <canvas> from /api/nodes/{node}/equity points.
// Equity arrives as decimal strings; it is turned into floats here only to draw.

const PAD = { left: 64, right: 12, top: 12, bottom: 24 };

export function drawEquity(canvas, points) {
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth || 600;
  const height = canvas.clientHeight || 220;
  canvas.width = Math.round(width * ratio);
  canvas.height = Math.round(height * ratio);
  const g = canvas.getContext("2d");
  g.setTransform(ratio, 0, 0, ratio, 0, 0);
  g.clearRect(0, 0, width, height);
  const style = getComputedStyle(canvas);
  const ink = style.color || "#ccc";
  const line = style.getPropertyValue("--line").trim() || "#4aa3ff";
  g.font = "11px system-ui, sans-serif";
  g.fillStyle = ink;
  const series = (points || [])
    .map((p) => [Number(p.ts_ms), Number.parseFloat(p.equity)])
    .filter(([t, v]) => Number.isFinite(t) && Number.isFinite(v));
  if (series.length < 2) {
    g.fillText("waiting for equity samples…", PAD.left, height / 2);
    canvas.dataset.points = String(series.length);
    return;
  }
  let [t0, t1] = [series[0][0], series[series.length - 1][0]];
  let lo = Math.min(...series.map((p) => p[1]));
  let hi = Math.max(...series.map((p) => p[1]));
  if (hi === lo) [lo, hi] = [lo - 1, hi + 1];
  if (t1 === t0) t1 = t0 + 1;
  const x = (t) => PAD.left + ((t - t0) / (t1 - t0)) * (width - PAD.left - PAD.right);
  const y = (v) => PAD.top + (1 - (v - lo) / (hi - lo)) * (height - PAD.top - PAD.bottom);

  g.strokeStyle = ink;
  g.globalAlpha = 0.3;
  g.beginPath();
  for (const v of [lo, (lo + hi) / 2, hi]) {
    g.moveTo(PAD.left, y(v));
    g.lineTo(width - PAD.right, y(v));
  }
  g.stroke();
  g.globalAlpha = 1;
  g.textAlign = "right";
  for (const v of [lo, (lo + hi) / 2, hi]) g.fillText(v.toFixed(2), PAD.left - 6, y(v) + 4);
  g.textAlign = "left";
  g.fillText(new Date(t0).toLocaleTimeString([], { hour12: false }), PAD.left, height - 6);
  g.textAlign = "right";
  g.fillText(new Date(t1).toLocaleTimeString([], { hour12: false }), width - PAD.right, height - 6);

  g.strokeStyle = line;
  g.lineWidth = 2;
  g.beginPath();
  series.forEach(([t, v], i) => (i === 0 ? g.moveTo(x(t), y(v)) : g.lineTo(x(t), y(v))));
  g.stroke();
  canvas.dataset.points = String(series.length);
}
