/**
 * The latency plot of the pipeline benchmark, drawn by hand as SVG: one dot per submission and the
 * per-second p50 and p99 lines, on axes with round steps that always include every point.
 */
import { fmt } from "./util.ts";

export function niceStep(range: number, target: number): number {
  const raw = range / Math.max(1, target);
  const mag = 10 ** Math.floor(Math.log10(raw));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * mag >= raw) return m * mag;
  return 10 * mag;
}

export const esc = (s: string): string => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");

export function latencySvg(o: {
  points: { x: number; y: number }[];
  p50: { x: number; y: number }[];
  p99: { x: number; y: number }[];
  seconds: number;
  title: string;
  subtitle: string[];
}): string {
  const W = 1000;
  const H = 580;
  const m = { l: 78, r: 24, t: 56 + 16 * o.subtitle.length, b: 58 };
  const pw = W - m.l - m.r;
  const ph = H - m.t - m.b;
  const xStep = niceStep(o.seconds, 10);
  const xMax = Math.max(xStep, Math.ceil(o.seconds / xStep) * xStep);
  const yTop = Math.max(1, ...o.points.map((p) => p.y)) * 1.04;
  const yStep = niceStep(yTop, 8);
  const yMax = Math.ceil(yTop / yStep) * yStep;
  const X = (x: number) => (m.l + (x / xMax) * pw).toFixed(1);
  const Y = (y: number) => (m.t + ph - (Math.max(0, y) / yMax) * ph).toFixed(1);
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="DejaVu Sans, Helvetica, Arial, sans-serif">`,
  );
  out.push(`<rect width="${W}" height="${H}" fill="#ffffff"/>`);
  out.push(`<text x="${m.l}" y="28" font-size="17" font-weight="bold" fill="#222">${esc(o.title)}</text>`);
  for (const [i, line] of o.subtitle.entries()) {
    out.push(`<text x="${m.l}" y="${48 + 16 * i}" font-size="12.5" fill="#555">${esc(line)}</text>`);
  }
  // grid and ticks
  out.push(`<g stroke="#e4e4e4" stroke-width="1">`);
  for (let y = 0; y <= yMax + 1e-9; y += yStep) out.push(`<line x1="${m.l}" x2="${m.l + pw}" y1="${Y(y)}" y2="${Y(y)}"/>`);
  for (let x = 0; x <= xMax + 1e-9; x += xStep) out.push(`<line x1="${X(x)}" x2="${X(x)}" y1="${m.t}" y2="${m.t + ph}"/>`);
  out.push(`</g>`);
  out.push(`<g font-size="12" fill="#333">`);
  for (let y = 0; y <= yMax + 1e-9; y += yStep)
    out.push(`<text x="${m.l - 8}" y="${(Number(Y(y)) + 4).toFixed(1)}" text-anchor="end">${fmt(y, yStep < 1 ? 1 : 0)}</text>`);
  for (let x = 0; x <= xMax + 1e-9; x += xStep)
    out.push(`<text x="${X(x)}" y="${m.t + ph + 18}" text-anchor="middle">${fmt(x, xStep < 1 ? 1 : 0)}</text>`);
  out.push(`</g>`);
  // axes
  out.push(
    `<g stroke="#333" stroke-width="1.2"><line x1="${m.l}" y1="${m.t + ph}" x2="${m.l + pw}" y2="${m.t + ph}"/><line x1="${m.l}" y1="${m.t}" x2="${m.l}" y2="${m.t + ph}"/></g>`,
  );
  out.push(
    `<text x="${m.l + pw / 2}" y="${H - 14}" font-size="13" text-anchor="middle" fill="#222">seconds since the start of the steady phase (send time of the submission)</text>`,
  );
  out.push(
    `<text transform="translate(20 ${m.t + ph / 2}) rotate(-90)" font-size="13" text-anchor="middle" fill="#222">latency, ms (HTTP send → row in the partner's database)</text>`,
  );
  // dots, then the per-second lines on top
  out.push(`<g fill="#1f77b4" fill-opacity="0.35">`);
  for (const p of o.points) out.push(`<circle cx="${X(p.x)}" cy="${Y(p.y)}" r="1.7"/>`);
  out.push(`</g>`);
  const poly = (pts: { x: number; y: number }[]) => pts.map((p) => `${X(p.x)},${Y(p.y)}`).join(" ");
  if (o.p99.length) out.push(`<polyline fill="none" stroke="#ff7f0e" stroke-width="1.8" stroke-dasharray="6 4" points="${poly(o.p99)}"/>`);
  if (o.p50.length) out.push(`<polyline fill="none" stroke="#d62728" stroke-width="2.4" points="${poly(o.p50)}"/>`);
  // legend
  const lx = m.l + pw - 310;
  const ly = m.t + 10;
  out.push(
    `<g font-size="12" fill="#222"><rect x="${lx}" y="${ly}" width="302" height="64" fill="#ffffff" fill-opacity="0.9" stroke="#bbb"/>`,
  );
  out.push(
    `<circle cx="${lx + 16}" cy="${ly + 16}" r="3" fill="#1f77b4" fill-opacity="0.6"/><text x="${lx + 30}" y="${ly + 20}">one submission</text>`,
  );
  out.push(
    `<line x1="${lx + 6}" x2="${lx + 26}" y1="${ly + 34}" y2="${ly + 34}" stroke="#d62728" stroke-width="2.4"/><text x="${lx + 30}" y="${ly + 38}">p50 of the submissions sent in each second</text>`,
  );
  out.push(
    `<line x1="${lx + 6}" x2="${lx + 26}" y1="${ly + 52}" y2="${ly + 52}" stroke="#ff7f0e" stroke-width="1.8" stroke-dasharray="6 4"/><text x="${lx + 30}" y="${ly + 56}">p99 of the submissions sent in each second</text>`,
  );
  out.push(`</g>`);
  out.push(`</svg>`);
  return `${out.join("\n")}\n`;
}
