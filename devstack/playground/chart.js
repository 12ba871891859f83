// A small SVG line chart: points [{x, y}] on linear axes, redrawn whole on every call.
// The page draws progress (%) over seconds until the history has points, then loss over step.

const SVG = "http://www.w3.org/2000/svg";
const WIDTH = 480;
const HEIGHT = 180;
const PAD = { left: 36, right: 12, top: 10, bottom: 30 };

function el(name, attrs = {}, text) {
  const node = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
  if (text !== undefined) node.textContent = text;
  return node;
}

/**
 * Draw `points` into `svg`.
 * options: xLabel, yLabel, yMin, yMax (fixed y range; else from the data), describe(points) for
 * the chart's accessible name.
 */
export function drawLineChart(svg, points, options = {}) {
  const { xLabel = "", yLabel = "", describe } = options;
  svg.replaceChildren();
  svg.setAttribute("viewBox", `0 0 ${WIDTH} ${HEIGHT}`);
  svg.setAttribute("role", "img");
  svg.dataset.points = String(points.length);
  svg.setAttribute("aria-label", describe ? describe(points) : `${points.length} points`);

  const xs = points.map((p) => p.x);
  const ys = points.map((p) => p.y);
  const xMin = Math.min(0, ...xs);
  const xMax = Math.max(xMin + 1, ...xs);
  const yMin = options.yMin ?? Math.min(...ys, 0);
  const yMax = options.yMax ?? Math.max(yMin + 1, ...ys);
  const plotW = WIDTH - PAD.left - PAD.right;
  const plotH = HEIGHT - PAD.top - PAD.bottom;
  const sx = (x) => PAD.left + ((x - xMin) / (xMax - xMin)) * plotW;
  const sy = (y) => PAD.top + plotH - ((y - yMin) / (yMax - yMin)) * plotH;

  const axes = el("g", { class: "axes" });
  axes.append(
    el("line", { x1: PAD.left, y1: PAD.top, x2: PAD.left, y2: PAD.top + plotH }),
    el("line", { x1: PAD.left, y1: PAD.top + plotH, x2: PAD.left + plotW, y2: PAD.top + plotH }),
    el("text", { x: PAD.left - 4, y: PAD.top + 4, "text-anchor": "end" }, formatTick(yMax)),
    el("text", { x: PAD.left - 4, y: PAD.top + plotH, "text-anchor": "end" }, formatTick(yMin)),
    el("text", { x: PAD.left, y: HEIGHT - 14, "text-anchor": "start" }, formatTick(xMin)),
    el("text", { x: PAD.left + plotW, y: HEIGHT - 14, "text-anchor": "end" }, formatTick(xMax)),
    el("text", { x: PAD.left + plotW / 2, y: HEIGHT - 2, "text-anchor": "middle" }, xLabel),
    el("text", { x: 2, y: PAD.top + plotH / 2, transform: `rotate(-90 8 ${PAD.top + plotH / 2})` }, yLabel),
  );
  svg.append(axes);
  if (points.length === 0) return;

  svg.append(
    el("polyline", {
      class: "line",
      fill: "none",
      points: points.map((p) => `${sx(p.x).toFixed(1)},${sy(p.y).toFixed(1)}`).join(" "),
    }),
  );
  const dots = el("g", { class: "dots" });
  for (const p of points) dots.append(el("circle", { cx: sx(p.x).toFixed(1), cy: sy(p.y).toFixed(1), r: 2.5 }));
  svg.append(dots);
}

function formatTick(value) {
  return Number.isInteger(value) ? String(value) : value.toFixed(1);
}
