// Line charts on uPlot (small, fast, canvas): training curves and live metrics.

import { useEffect, useRef } from "preact/hooks";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import type { EpochPoint } from "../types";

export interface Series {
  label: string;
  values: (number | null)[];
  color: string;
  /** Draw on the right-hand axis (e.g. loss beside accuracy). */
  right?: boolean;
}

const PALETTE = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#ca8a04", "#db2777"];
export function color(i: number): string {
  return PALETTE[i % PALETTE.length];
}

export function LineChart({
  x,
  series,
  xLabel,
  yLabel,
  rightLabel,
  height = 240,
  title,
  timeAxis = false,
  integerX = !timeAxis,
}: {
  x: number[];
  series: Series[];
  xLabel: string;
  yLabel: string;
  rightLabel?: string;
  height?: number;
  title: string;
  timeAxis?: boolean;
  /** Ticks on whole numbers only (epochs). */
  integerX?: boolean;
}) {
  const host = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const shape = series.map((s) => `${s.label}/${s.right ? 1 : 0}`).join("|") + (rightLabel ?? "");

  useEffect(() => {
    const el = host.current;
    if (!el) return;
    const opts: uPlot.Options = {
      width: Math.max(200, el.clientWidth),
      height,
      scales: { x: { time: timeAxis }, y: {}, r: {} },
      axes: [
        {
          label: xLabel,
          stroke: "currentColor",
          grid: { stroke: "rgba(128,128,128,0.2)" },
          ...(integerX ? { incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000] } : {}),
        },
        { label: yLabel, stroke: "currentColor", scale: "y", grid: { stroke: "rgba(128,128,128,0.2)" } },
        ...(rightLabel ? [{ label: rightLabel, stroke: "currentColor", scale: "r", side: 1 as const, grid: { show: false } }] : []),
      ],
      series: [
        { label: xLabel },
        ...series.map((s) => ({
          label: s.label,
          stroke: s.color,
          width: 2,
          scale: s.right ? "r" : "y",
          points: { show: x.length < 40 },
          spanGaps: true,
        })),
      ],
    };
    const p = new uPlot(opts, [x, ...series.map((s) => s.values)] as uPlot.AlignedData, el);
    plot.current = p;
    const resize = new ResizeObserver(() => p.setSize({ width: Math.max(200, el.clientWidth), height }));
    resize.observe(el);
    return () => {
      resize.disconnect();
      p.destroy();
      plot.current = null;
    };
    // Rebuilt only when the set of series changes; data updates go through setData.
  }, [shape, height, xLabel, yLabel]);

  useEffect(() => {
    plot.current?.setData([x, ...series.map((s) => s.values)] as uPlot.AlignedData);
  }, [x, series]);

  return <div class="chart" ref={host} role="img" aria-label={title} />;
}

/** Loss (right axis) and accuracy (left) per epoch of one architecture's training;
 * `index` picks a distinct set of colours when several are drawn on one page. */
export function EpochCurves({ architecture, points, index }: { architecture: string; points: EpochPoint[]; index: number }) {
  const c = (k: number) => color(4 * index + k);
  return (
    <LineChart
      title={`Loss and accuracy per epoch, ${architecture}`}
      x={points.map((p) => p.epoch)}
      xLabel="epoch"
      yLabel="accuracy"
      rightLabel="loss"
      series={[
        { label: "train accuracy", values: points.map((p) => p.train_accuracy), color: c(0) },
        { label: "validation accuracy", values: points.map((p) => p.val_accuracy ?? null), color: c(2) },
        { label: "train loss", values: points.map((p) => p.train_loss), color: c(1), right: true },
        { label: "validation loss", values: points.map((p) => p.val_loss ?? null), color: c(3), right: true },
      ]}
    />
  );
}
