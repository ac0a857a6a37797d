/**
 * The soak's plot, drawn by hand as SVG: each service instance's resident set over time (top) and
 * each stage's lag over time (bottom), on shared time axes with round steps; a dashed line marks
 * the end of the warm-up, after which growth is measured.
 */
import { esc, niceStep } from "../../bench/pipeline/svg.ts";
import type { Sample } from "./samples.ts";

const COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];

interface Panel {
  readonly title: string;
  readonly series: { name: string; points: { x: number; y: number }[] }[];
}

export function soakSvg(o: {
  samples: readonly Sample[];
  warmupS: number;
  /** Seconds at which a policy was changed: dotted marks on the lag panel. */
  policyChangesS: readonly number[];
  title: string;
  subtitle: string[];
}): string {
  const instances = [...new Set(o.samples.flatMap((s) => Object.keys(s.rssMb)))].sort();
  const stages = [...new Set(o.samples.flatMap((s) => Object.keys(s.lag)))];
  const panels: Panel[] = [
    {
      title: "resident set, MB",
      series: instances.map((name) => ({
        name,
        points: o.samples.flatMap((s) => (s.rssMb[name] === undefined ? [] : [{ x: s.t, y: s.rssMb[name] as number }])),
      })),
    },
    {
      title: "lag, messages behind (stored offset to the topic's end)",
      series: stages.map((name) => ({
        name,
        points: o.samples.flatMap((s) => (typeof s.lag[name] === "number" ? [{ x: s.t, y: s.lag[name] as number }] : [])),
      })),
    },
  ];
  const W = 1000;
  const PH = 300;
  const m = { l: 78, r: 220, t: 56 + 16 * o.subtitle.length, b: 58, gap: 70 };
  const H = m.t + 2 * PH + m.gap + m.b;
  const pw = W - m.l - m.r;
  const seconds = Math.max(1, ...o.samples.map((s) => s.t));
  const xStep = niceStep(seconds, 10);
  const xMax = Math.ceil(seconds / xStep) * xStep;
  const X = (x: number) => (m.l + (x / xMax) * pw).toFixed(1);
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="DejaVu Sans, Helvetica, Arial, sans-serif">`,
    `<rect width="${W}" height="${H}" fill="#ffffff"/>`,
    `<text x="${m.l}" y="28" font-size="17" font-weight="bold" fill="#222">${esc(o.title)}</text>`,
    ...o.subtitle.map((line, i) => `<text x="${m.l}" y="${48 + 16 * i}" font-size="12.5" fill="#555">${esc(line)}</text>`),
  ];
  panels.forEach((panel, k) => {
    const top = m.t + k * (PH + m.gap);
    const yTop = Math.max(1, ...panel.series.flatMap((s) => s.points.map((p) => p.y))) * 1.05;
    const yStep = niceStep(yTop, 6);
    const yMax = Math.ceil(yTop / yStep) * yStep;
    const Y = (y: number) => (top + PH - (Math.max(0, y) / yMax) * PH).toFixed(1);
    out.push(
      `<text x="${m.l}" y="${top - 8}" font-size="13" fill="#222">${esc(panel.title)}</text>`,
      `<g stroke="#e4e4e4" stroke-width="1">`,
    );
    for (let y = 0; y <= yMax + 1e-9; y += yStep) out.push(`<line x1="${m.l}" x2="${m.l + pw}" y1="${Y(y)}" y2="${Y(y)}"/>`);
    for (let x = 0; x <= xMax + 1e-9; x += xStep) out.push(`<line x1="${X(x)}" x2="${X(x)}" y1="${top}" y2="${top + PH}"/>`);
    out.push(`</g><g font-size="12" fill="#333">`);
    for (let y = 0; y <= yMax + 1e-9; y += yStep)
      out.push(`<text x="${m.l - 8}" y="${(Number(Y(y)) + 4).toFixed(1)}" text-anchor="end">${Math.round(y)}</text>`);
    for (let x = 0; x <= xMax + 1e-9; x += xStep)
      out.push(`<text x="${X(x)}" y="${top + PH + 18}" text-anchor="middle">${Math.round(x)}</text>`);
    out.push(`</g>`);
    out.push(`<line x1="${X(o.warmupS)}" x2="${X(o.warmupS)}" y1="${top}" y2="${top + PH}" stroke="#999" stroke-dasharray="4 4"/>`);
    if (k === 1)
      for (const at of o.policyChangesS)
        out.push(`<line x1="${X(at)}" x2="${X(at)}" y1="${top}" y2="${top + PH}" stroke="#bbb" stroke-dasharray="1 3"/>`);
    out.push(
      `<g stroke="#333" stroke-width="1.2"><line x1="${m.l}" y1="${top + PH}" x2="${m.l + pw}" y2="${top + PH}"/><line x1="${m.l}" y1="${top}" x2="${m.l}" y2="${top + PH}"/></g>`,
    );
    panel.series.forEach((s, i) => {
      const colour = COLOURS[i % COLOURS.length] as string;
      if (s.points.length)
        out.push(
          `<polyline fill="none" stroke="${colour}" stroke-width="1.6" points="${s.points.map((p) => `${X(p.x)},${Y(p.y)}`).join(" ")}"/>`,
        );
      const ly = top + 14 + 16 * i;
      out.push(`<line x1="${m.l + pw + 12}" x2="${m.l + pw + 32}" y1="${ly - 4}" y2="${ly - 4}" stroke="${colour}" stroke-width="2"/>`);
      out.push(`<text x="${m.l + pw + 38}" y="${ly}" font-size="12" fill="#222">${esc(s.name)}</text>`);
    });
  });
  out.push(
    `<text x="${m.l + pw / 2}" y="${H - 14}" font-size="13" text-anchor="middle" fill="#222">seconds since the start of the run (dashed: end of the warm-up; dotted: a policy change)</text>`,
  );
  out.push("</svg>");
  return `${out.join("\n")}\n`;
}
