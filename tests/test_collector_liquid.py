from __future__ import annotations

import pytest

from digest.collector.liquid import strip_templates


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{{< youtube "abc_123" >}}', "[YouTube video](https://www.youtube.com/watch?v=abc_123)"),
        ("{{<youtube xyz>}}", "[YouTube video](https://www.youtube.com/watch?v=xyz)"),
        ('{{< youtube id="q1" autoplay="true" >}}', "[YouTube video](https://www.youtube.com/watch?v=q1)"),
        ('{{< tweet user="someone" id="123" >}}', "[Post on X](https://twitter.com/someone/status/123)"),
        ("{{< tweet 456 >}}", "[Post on X](https://twitter.com/i/status/456)"),
        ('{{< x user="who" id="789" >}}', "[Post on X](https://x.com/who/status/789)"),
        ("{{< vimeo 55 >}}", "[Vimeo video](https://vimeo.com/55)"),
        ('{{< callout type="important" >}}주의하세요{{< /callout >}}', "주의하세요"),
        ("{{% notice %}}Inner **text**{{% /notice %}}", "Inner **text**"),
        ("a {{</ section >}} b", "a  b"),
        ('{{< figure src="x.png" >}}', ""),
        ("{{< hello.inline >}}{{ .Site.Title }}{{< /hello.inline >}}after", "after"),
        ("{{</* youtube abc */>}}", ""),
        ("![x]({{ site.baseurl }}/images/x.png)", "![x](/images/x.png)"),
        ("{% include toc.html %}Text{% if x %} yes{% endif %}", "Text yes"),
        ("{% comment %}hidden {{ x }}{% endcomment %}shown", "shown"),
        ("{% highlight python %}\nprint(1)\n{% endhighlight %}", "```python\nprint(1)\n```"),
        ("{% raw %}{{ kept }}{% endraw %}", "{{ kept }}"),
        ("{{- page.title | upcase -}}", ""),
        ("plain text with { braces }", "plain text with { braces }"),
    ],
)
def test_liquid_and_shortcodes(text: str, expected: str) -> None:
    assert strip_templates(text) == expected
