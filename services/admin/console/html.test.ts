import { describe, expect, it } from "vitest";
import { Html, escapeHtml, html } from "./html.ts";

describe("html templates", () => {
  it("escape every interpolated string, number and array item", () => {
    const evil = `<script>alert("x")</script>&'\``;
    const out = html`<p title="${evil}">${evil}${[evil, 3]}</p>`.markup;
    expect(out).not.toContain("<script>");
    expect(out).toBe(
      `<p title="&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;&#39;&#96;">` +
        `&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;&#39;&#96;`.repeat(2) +
        "3</p>",
    );
  });

  it("keep nested templates as markup and drop null, undefined and false", () => {
    const inner = html`<b>${"a<b"}</b>`;
    expect(html`<i>${inner}${null}${undefined}${false}</i>`.markup).toBe("<i><b>a&lt;b</b></i>");
    expect(html`${new Html("<br>")}`.markup).toBe("<br>");
  });

  it("escapeHtml leaves plain text alone", () => {
    expect(escapeHtml("hotline-uk 42")).toBe("hotline-uk 42");
  });
});
