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
        ('{{< figure src="x.png" >}}', '<figure><img src="x.png" alt=""></figure>'),
        (
            '{{< figure src="/a.jpg" link="https://x.example" caption="A *cat*" attr="Kim" attrlink="/k" alt="c" >}}',
            '<figure><a href="https://x.example"><img src="/a.jpg" alt="c"></a>'
            '<figcaption><p>A <em>cat</em> <a href="/k">Kim</a></p></figcaption></figure>',
        ),
        ("{% youtube abc %}", "[YouTube video](https://www.youtube.com/watch?v=abc)"),
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


@pytest.mark.parametrize(
    ("kind", "text", "expected"),
    [
        ("hugo", "Go templates: {{ .Title }} and {% raw %} stay", "Go templates: {{ .Title }} and {% raw %} stay"),
        ("hugo", "{{< youtube q1 >}}", "[YouTube video](https://www.youtube.com/watch?v=q1)"),
        (
            "pelican",
            "Jinja {{ x }} stays, {% youtube q1 %} is a link",
            "Jinja {{ x }} stays, [YouTube video](https://www.youtube.com/watch?v=q1) is a link",
        ),
        ("jekyll", "{{ x }}{% if y %}z{% endif %}", "z"),
    ],
)
def test_each_generator_handles_only_its_own_templates(kind: str, text: str, expected: str) -> None:
    assert strip_templates(text, kind) == expected
