"""The words around the posts (buttons, headings, footer, the unsubscribe pages) in the issue's language:
English and Korean are built in; any other language gets English."""

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
    also_new: str  # the heading of the late arrivals
    also_new_note: str  # under it: why they are here
    more_in_archive: str  # {count}: entries left out of a long email
    # the unsubscribe pages of `digest serve`
    unsubscribe_question: str  # {email}
    unsubscribed_title: str
    unsubscribed_body: str  # {email}
    broken_link_title: str
    broken_link_body: str
    unavailable_title: str
    unavailable_body: str
    preferences: str = "Preferences"  # the link to the reader's preference page

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
    also_new="Also new since the last issue",
    also_new_note="Dated in an earlier week, but not in that week's issue.",
    more_in_archive="{count} more in the archive →",
    unsubscribe_question="Stop sending the newsletter to {email}?",
    unsubscribed_title="You are unsubscribed",
    unsubscribed_body="{email} will not receive the newsletter any more.",
    broken_link_title="This unsubscribe link does not work",
    broken_link_body="The link is damaged or too old. Nothing was changed.",
    unavailable_title="Unsubscribing is not available",
    unavailable_body="This server cannot check unsubscribe links. Please reply to the newsletter to unsubscribe.",
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
    also_new="지난 호 이후에 새로 올라온 글",
    also_new_note="앞선 주의 날짜지만 그 주의 호에 실리지 않았던 글입니다.",
    more_in_archive="나머지 {count}편은 지난 호 모음에서 →",
    unsubscribe_question="{email} 주소로 뉴스레터를 그만 받으시겠습니까?",
    unsubscribed_title="구독을 해지했습니다",
    unsubscribed_body="이제 {email} 주소로 뉴스레터를 보내지 않습니다.",
    broken_link_title="구독 해지 링크가 올바르지 않습니다",
    broken_link_body="링크가 손상되었거나 너무 오래되었습니다. 아무것도 바뀌지 않았습니다.",
    unavailable_title="지금은 구독을 해지할 수 없습니다",
    unavailable_body="이 서버는 구독 해지 링크를 확인할 수 없습니다. 뉴스레터에 답장해 해지를 요청해 주세요.",
    preferences="구독 설정",
)

_BY_LANGUAGE = {"en": ENGLISH, "ko": KOREAN}


def _base_language(language: str) -> str:
    return language.lower().replace("_", "-").split("-")[0]


def labels_for(language: str) -> Labels:
    """ "ko", "ko-KR", "ko_KR" -> Korean; anything unknown -> English."""
    return _BY_LANGUAGE.get(_base_language(language), ENGLISH)


# -- the readers' pages and mails: subscribe, confirm, welcome, preferences -----------------------------


@dataclass(frozen=True)
class ReaderLabels:
    language_name: str  # this language, named in itself (the preference page's choices)
    subscribe: str
    email_address: str
    your_name: str
    check_inbox_title: str
    check_inbox: str  # {site}
    too_many_title: str
    too_many: str
    captcha_failed_title: str
    captcha_failed: str
    captcha_down_title: str
    captcha_down: str
    confirm_title: str
    confirm_text: str  # {email} {site}
    confirm_button: str
    confirmed_title: str
    confirmed: str  # {site}: and a welcome email is on its way (it says whether the latest issue is in it)
    confirmed_quiet: str  # {site}: with subscribe.welcome = false, no mail until the next issue
    already_confirmed: str  # {site}
    expired_title: str
    expired: str
    bad_link_title: str
    bad_link: str
    old_link: str
    nothing_changed: str
    confirm_mail_subject: str  # {site}
    confirm_mail_intro: str  # {site}
    confirm_mail_action: str
    confirm_mail_ignore: str
    notice_mail_subject: str  # {site}
    notice_mail_intro: str  # {site}
    change_mail_subject: str  # {site}
    change_mail_intro: str  # {site} {old}
    change_mail_action: str
    welcome_subject: str  # {site}
    welcome_intro: str  # {site}
    welcome_alone: str  # {site}: the intro of a welcome without an issue
    welcome_no_issue: str
    preferences_title: str
    preferences_for: str  # {email}
    language: str
    site_default: str
    topics: str
    topics_hint: str
    format: str
    format_html: str
    format_text: str
    pause: str
    pause_none: str
    pause_weeks: str  # {weeks}
    paused_until: str  # {date}
    pause_invalid: str
    save: str
    saved_title: str
    saved: str
    change_address: str
    change_address_hint: str
    new_address: str
    change_button: str
    change_sent: str  # {email}
    change_wait: str
    changed_title: str
    changed: str  # {email}
    taken: str
    unsubscribe_title: str
    unsubscribe_text: str
    unsubscribe_button: str
    unsubscribed_title: str
    unsubscribed: str  # {email}
    invalid_address: str
    not_available_title: str
    not_available: str


READER_ENGLISH = ReaderLabels(
    language_name="English",
    subscribe="Subscribe",
    email_address="Email address",
    your_name="Name (optional)",
    check_inbox_title="Check your inbox",
    check_inbox="If the address can receive {site}, a message with a confirmation button is on its way. "
    "Nothing is sent until you press it.",
    too_many_title="Too many requests",
    too_many="Too many subscribe requests came from here. Please try again in an hour.",
    captcha_failed_title="The check did not pass",
    captcha_failed="The check that you are a person did not pass. Please go back and try again.",
    captcha_down_title="Please try again later",
    captcha_down="The check that you are a person cannot be done right now, so nothing was sent. "
    "Please try again in a few minutes.",
    confirm_title="Confirm your subscription",
    confirm_text="Send {site} to {email} every week?",
    confirm_button="Yes, subscribe me",
    confirmed_title="You are subscribed",
    confirmed="Welcome to {site}. A welcome email is on its way to your inbox.",
    confirmed_quiet="Welcome to {site}. Your first issue comes with the next weekly send.",
    already_confirmed="You were already subscribed to {site}. Nothing changed.",
    expired_title="This link has expired",
    expired="Confirmation links work for 7 days. Please subscribe again.",
    bad_link_title="This link does not work",
    bad_link="The link is damaged or incomplete: open it again from the email, whole.",
    old_link="The link is too old: use the one in the latest email from us.",
    nothing_changed="Nothing was changed.",
    confirm_mail_subject="Confirm your subscription to {site}",
    confirm_mail_intro="Someone, hopefully you, asked to receive {site} at this address.",
    confirm_mail_action="Open this page and press the button to confirm:",
    confirm_mail_ignore="If it was not you, ignore this message: you will not hear from us again.",
    notice_mail_subject="You are already subscribed to {site}",
    notice_mail_intro="Someone asked to subscribe this address to {site}, and it is already subscribed. "
    "Change what you receive, or unsubscribe, on your preference page:",
    change_mail_subject="Confirm your new address for {site}",
    change_mail_intro="You asked to receive {site} at this address instead of {old}.",
    change_mail_action="Open this page and press the button to confirm the change:",
    welcome_subject="Welcome to {site}",
    welcome_intro="Welcome, and thank you for subscribing to {site}. Here is the latest issue; the next one "
    "comes at the end of the week.",
    welcome_alone="Welcome, and thank you for subscribing to {site}.",
    welcome_no_issue="Your first issue comes with the next weekly send.",
    preferences_title="Your subscription",
    preferences_for="Preferences for {email}",
    language="Language",
    site_default="The site's language",
    topics="Topics",
    topics_hint="Only posts on the topics you tick. Tick none for every post.",
    format="Format",
    format_html="HTML with a plain-text copy",
    format_text="Plain text only",
    pause="Pause",
    pause_none="Do not pause",
    pause_weeks="Pause for {weeks} week(s)",
    paused_until="Paused until {date}.",
    pause_invalid="Choose a pause from the list: nothing was changed.",
    save="Save",
    saved_title="Saved",
    saved="Your preferences are saved.",
    change_address="Change of address",
    change_address_hint="We send a confirmation to the new address; the change happens when you press its button.",
    new_address="New address",
    change_button="Change address",
    change_sent="A confirmation is on its way to {email}.",
    change_wait="A change of address was asked less than a day ago; nothing was sent. Please try again tomorrow.",
    changed_title="Address changed",
    changed="From now on the newsletter goes to {email}.",
    taken="That address is already subscribed; nothing was changed.",
    unsubscribe_title="Unsubscribe",
    unsubscribe_text="Stop sending the newsletter to this address.",
    unsubscribe_button="Unsubscribe",
    unsubscribed_title="You are unsubscribed",
    unsubscribed="{email} will not receive the newsletter any more.",
    invalid_address="That is not an email address.",
    not_available_title="Not available",
    not_available="This server has no secret to sign links (DIGEST_SECRET is not set).",
)

READER_KOREAN = ReaderLabels(
    language_name="한국어",
    subscribe="구독하기",
    email_address="이메일 주소",
    your_name="이름 (선택)",
    check_inbox_title="메일함을 확인해 주세요",
    check_inbox="{site} 구독 확인 메일을 보냈습니다. 메일의 버튼을 누르기 전에는 아무것도 보내지 않습니다.",
    too_many_title="요청이 너무 많습니다",
    too_many="이곳에서 구독 요청이 너무 많이 왔습니다. 한 시간 뒤에 다시 시도해 주세요.",
    captcha_failed_title="확인을 통과하지 못했습니다",
    captcha_failed="사람인지 확인하는 단계를 통과하지 못했습니다. 돌아가서 다시 시도해 주세요.",
    captcha_down_title="잠시 뒤에 다시 시도해 주세요",
    captcha_down="지금은 사람인지 확인할 수 없어서 아무것도 보내지 않았습니다. 몇 분 뒤에 다시 시도해 주세요.",
    confirm_title="구독 확인",
    confirm_text="{email} 주소로 매주 {site} 소식을 받으시겠어요?",
    confirm_button="네, 구독합니다",
    confirmed_title="구독되었습니다",
    confirmed="{site} 구독을 환영합니다. 환영 메일을 보내 드렸습니다.",
    confirmed_quiet="{site} 구독을 환영합니다. 첫 호는 다음 주간 발송 때 보내 드립니다.",
    already_confirmed="이미 {site}을(를) 구독하고 계십니다. 바뀐 것은 없습니다.",
    expired_title="링크가 만료되었습니다",
    expired="확인 링크는 7일 동안 유효합니다. 다시 구독해 주세요.",
    bad_link_title="이 링크는 쓸 수 없습니다",
    bad_link="링크가 손상되었거나 잘렸습니다. 메일에서 링크 전체를 다시 열어 주세요.",
    old_link="너무 오래된 링크입니다. 가장 최근에 받은 메일의 링크를 써 주세요.",
    nothing_changed="바뀐 것은 없습니다.",
    confirm_mail_subject="{site} 구독을 확인해 주세요",
    confirm_mail_intro="이 주소로 {site} 소식을 받겠다는 요청이 있었습니다.",
    confirm_mail_action="아래 페이지를 열고 버튼을 눌러 확인해 주세요:",
    confirm_mail_ignore="요청하신 적이 없다면 이 메일은 무시하세요. 다시 연락드리지 않습니다.",
    notice_mail_subject="이미 {site}을(를) 구독하고 계십니다",
    notice_mail_intro="이 주소로 {site} 구독 요청이 있었는데, 이미 구독 중인 주소입니다. "
    "받는 내용을 바꾸거나 구독을 해지하려면 설정 페이지를 여세요:",
    change_mail_subject="{site} 새 주소를 확인해 주세요",
    change_mail_intro="{old} 대신 이 주소로 {site} 소식을 받겠다고 요청하셨습니다.",
    change_mail_action="아래 페이지를 열고 버튼을 눌러 주소 변경을 확인해 주세요:",
    welcome_subject="{site}에 오신 것을 환영합니다",
    welcome_intro="{site} 구독을 환영합니다. 최근 호를 보내 드립니다. 다음 호는 이번 주말에 나옵니다.",
    welcome_alone="{site} 구독을 환영합니다.",
    welcome_no_issue="첫 호는 다음 주간 발송 때 보내 드립니다.",
    preferences_title="구독 설정",
    preferences_for="{email} 구독 설정",
    language="언어",
    site_default="사이트 기본 언어",
    topics="주제",
    topics_hint="고른 주제의 글만 보내 드립니다. 아무것도 고르지 않으면 모든 글을 보내 드립니다.",
    format="형식",
    format_html="HTML (텍스트 사본 포함)",
    format_text="텍스트만",
    pause="잠시 멈춤",
    pause_none="멈추지 않음",
    pause_weeks="{weeks}주 동안 멈춤",
    paused_until="{date}까지 멈춤",
    pause_invalid="목록에서 멈출 기간을 고르세요. 아무것도 바꾸지 않았습니다.",
    save="저장",
    saved_title="저장했습니다",
    saved="구독 설정을 저장했습니다.",
    change_address="주소 변경",
    change_address_hint="새 주소로 확인 메일을 보냅니다. 메일의 버튼을 누르면 주소가 바뀝니다.",
    new_address="새 주소",
    change_button="주소 바꾸기",
    change_sent="{email} 주소로 확인 메일을 보냈습니다.",
    change_wait="하루 안에 이미 주소 변경을 요청하셔서 메일을 보내지 않았습니다. 내일 다시 시도해 주세요.",
    changed_title="주소를 바꿨습니다",
    changed="이제부터 {email} 주소로 보내 드립니다.",
    taken="그 주소는 이미 구독 중입니다. 바뀐 것은 없습니다.",
    unsubscribe_title="구독 해지",
    unsubscribe_text="이 주소로 더 이상 소식을 보내지 않습니다.",
    unsubscribe_button="구독 해지",
    unsubscribed_title="구독을 해지했습니다",
    unsubscribed="{email} 주소로 더 이상 소식을 보내지 않습니다.",
    invalid_address="올바른 이메일 주소가 아닙니다.",
    not_available_title="사용할 수 없습니다",
    not_available="이 서버에는 링크를 서명할 비밀 키가 없습니다 (DIGEST_SECRET이 설정되지 않음).",
)

_READER_BY_LANGUAGE = {"en": READER_ENGLISH, "ko": READER_KOREAN}


def reader_labels_for(language: str) -> ReaderLabels:
    return _READER_BY_LANGUAGE.get(_base_language(language), READER_ENGLISH)


def reader_languages() -> dict[str, str]:
    """{code: name} of the languages the pages and mails are written in."""
    return {code: labels.language_name for code, labels in _READER_BY_LANGUAGE.items()}
