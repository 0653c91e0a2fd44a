"""The words around the posts (buttons, headings, footer) in the site's language: English or Korean."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Labels:
    view_in_browser: str
    this_week: str
    in_this_post: str
    read_more: str
    long_issue: str
    no_posts: str
    subscribed: str  # {site}
    unsubscribe: str
    sent_to: str  # {recipient}
    archive: str
    atom_feed: str
    rss_feed: str
    all_issues: str
    weekly_digest: str  # {site}
    no_issues: str
    references: str
    post_count: str  # {count}
    posts_count: str  # {count}

    def posts(self, count: int) -> str:
        return (self.post_count if count == 1 else self.posts_count).format(count=count)


ENGLISH = Labels(
    view_in_browser="View in browser",
    this_week="This week",
    in_this_post="In this post",
    read_more="Read the full post →",
    long_issue="This issue is long, so it shows summaries. Every title links to the full post.",
    no_posts="No new posts this week.",
    subscribed="You receive this email because you subscribed to {site}.",
    unsubscribe="Unsubscribe",
    sent_to="Sent to {recipient}.",
    archive="Archive",
    atom_feed="Atom feed",
    rss_feed="RSS feed",
    all_issues="All issues",
    weekly_digest="{site}: weekly digest",
    no_issues="No issues yet.",
    references="References",
    post_count="{count} post",
    posts_count="{count} posts",
)

KOREAN = Labels(
    view_in_browser="브라우저에서 보기",
    this_week="이번 주 글",
    in_this_post="이 글에서 다룬 내용",
    read_more="전체 글 읽기 →",
    long_issue="이번 호는 길어서 요약만 실었습니다. 제목을 누르면 전체 글을 볼 수 있습니다.",
    no_posts="이번 주에는 새 글이 없습니다.",
    subscribed="{site} 소식을 구독하셔서 보내 드리는 메일입니다.",
    unsubscribe="구독 해지",
    sent_to="받는 사람: {recipient}",
    archive="지난 호 모음",
    atom_feed="Atom 피드",
    rss_feed="RSS 피드",
    all_issues="모든 호 보기",
    weekly_digest="{site} 주간 소식",
    no_issues="아직 발행한 호가 없습니다.",
    references="링크",
    post_count="글 {count}편",
    posts_count="글 {count}편",
)

_BY_LANGUAGE = {"en": ENGLISH, "ko": KOREAN}


def labels_for(language: str) -> Labels:
    """ "ko", "ko-KR", "ko_KR" -> Korean; anything unknown -> English."""
    return _BY_LANGUAGE.get(language.lower().replace("_", "-").split("-")[0], ENGLISH)
