import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';

export type Columns = uPlot.AlignedData;

/**
 * A time-series chart (uPlot: canvas, ~50 kB, draws 10,000s of points in milliseconds). The figure says in
 * words what the chart shows (its caption and the canvas' label) for those who cannot see it. With `bands`,
 * series 2 and 3 are each bucket's min and max around the average (the downsampled history).
 */
export function TimeChart(props: {
  title: string;
  caption: string;
  data: Columns;
  bands?: boolean;
  height?: number;
  testId?: string;
}) {
  const host = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | undefined>(undefined);

  useEffect(() => {
    const element = host.current;
    if (!element) return;
    const width = Math.max(240, element.clientWidth);
    const line = { stroke: '#1d4ed8', width: 2, points: { show: false } };
    const edge = { stroke: '#94a3b8', width: 1, dash: [4, 4], points: { show: false } };
    const options: uPlot.Options = {
      width,
      height: props.height ?? 180,
      legend: { show: false },
      cursor: { drag: { x: true, y: false } },
      scales: { x: { time: true } },
      axes: [
        { stroke: '#334155', grid: { stroke: '#e2e8f0' } },
        { stroke: '#334155', grid: { stroke: '#e2e8f0' }, size: 56 },
      ],
      series: props.bands
        ? [{}, { label: 'avg', ...line }, { label: 'min', ...edge }, { label: 'max', ...edge }]
        : [{}, { label: props.title, ...line, spanGaps: false }],
    };
    plot.current = new uPlot(options, props.data, element);
    const resize = new ResizeObserver(() => {
      plot.current?.setSize({ width: Math.max(240, element.clientWidth), height: props.height ?? 180 });
    });
    resize.observe(element);
    return () => {
      resize.disconnect();
      plot.current?.destroy();
      plot.current = undefined;
    };
    // The plot is made once per kind; new data goes through setData below.
  }, [props.bands, props.height, props.title]);

  useEffect(() => {
    plot.current?.setData(props.data);
  }, [props.data]);

  return (
    <figure class="chart" data-testid={props.testId} data-points={props.data[0]?.length ?? 0}>
      <figcaption>{props.caption}</figcaption>
      <div ref={host} role="img" aria-label={`${props.title}: ${props.caption}`} />
    </figure>
  );
}
