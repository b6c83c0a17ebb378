/** A Plotly trace (scatter, heatmap, bar…) as plain JSON. */
export type PlotlyTrace = Record<string, unknown>;

/**
 * A Plotly figure as plain JSON, the same shape `Plotly.newPlot(div, data, layout)` and the
 * `application/vnd.plotly.v1+json` mime type take.
 */
export interface PlotlyFigure {
  data: PlotlyTrace[];
  layout: Record<string, unknown>;
}
