import { describe, expect, it } from "vitest";
import { escapeHtml } from "../../lib/util/html.js";

describe("escapeHtml", () => {
  it("turns each of & < > \" ' into its entity, & first so nothing is escaped twice", () => {
    expect(escapeHtml(`<b> "A&B's" </b>`)).toBe("&lt;b&gt; &quot;A&amp;B&#39;s&quot; &lt;/b&gt;");
    expect(escapeHtml("&lt;")).toBe("&amp;lt;");
  });

  it("leaves other text, including non-ASCII, as it is", () => {
    expect(escapeHtml("ROC AUC ≥ 0.8 · mel/nv")).toBe("ROC AUC ≥ 0.8 · mel/nv");
    expect(escapeHtml("")).toBe("");
  });
});
