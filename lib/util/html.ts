const HTML_ENTITIES: Record<string, string> = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };

/**
 * Escapes text for HTML or SVG/XML element content and quoted attribute values: `& < > " '` become
 * entities (`'` as `&#39;`, which HTML and XML both read). The one escaper of the library (reports,
 * charts, tables, notebook HTML and the SVG labels of TensorBoard image grids).
 *
 * @example escapeHtml(`<b> "A&B's" </b>`) // "&lt;b&gt; &quot;A&amp;B&#39;s&quot; &lt;/b&gt;"
 */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => HTML_ENTITIES[c]);
}
