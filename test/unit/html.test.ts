import { describe, expect, it } from 'vitest';
import { html } from '../../src/gateway/html.js';

describe('html', () => {
  it('escapes every interpolated value, in text and in attributes', () => {
    const title = `<img src=x onerror="alert('x')">&`;
    expect(html`<p title="${title}">${title}</p>`.markup).toBe(
      '<p title="&lt;img src=x onerror=&quot;alert(&#39;x&#39;)&quot;&gt;&amp;">' +
        '&lt;img src=x onerror=&quot;alert(&#39;x&#39;)&quot;&gt;&amp;</p>',
    );
  });

  it('keeps nested templates as markup, joins arrays, and drops null, undefined and booleans', () => {
    const items = ['a<b', 'c'].map((t) => html`<li>${t}</li>`);
    // prettier-ignore
    const markup = html`<ul>${items}</ul>${null}${undefined}${false}${0}`.markup;
    expect(markup).toBe('<ul><li>a&lt;b</li><li>c</li></ul>0');
  });
});
