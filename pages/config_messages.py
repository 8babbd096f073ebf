"""The admin editor's validation messages, in zh-CN and English.

- ``admin.problem.<type>``: one per problem ``type`` of :class:`config.loader.Problem`
  (pydantic's error types and this project's own). ``{name}`` is filled from the problem's
  ``context`` by the page's script (``pages/static/admin.js``), and ``admin.problem.got`` is
  added when the context carries the value that was sent (``input``). A type without an entry
  shows ``admin.problem.value_error`` with the English text: never an empty message.
- ``admin.check.<id>``: this project's own refusals (``value_error`` from the files' checks,
  :data:`config.checks.CHECKS`, and the SIP edge's, :data:`admin.edge_checks.
  EDGE_CHECKS`), named by the ``check`` in the problem's context. The English is the check's
  own text; the Chinese is here. The page fills the check's text in, then puts it in its
  type's message (``取值无效：…``).
"""

from __future__ import annotations

from admin.edge_checks import EDGE_CHECKS
from config.checks import CHECKS

# type: (zh-CN, English)
PROBLEMS: dict[str, tuple[str, str]] = {
    "missing": ("缺少必填项", "required key is missing"),
    "extra_forbidden": ("不认识的键（此处不允许）", "unknown key (not allowed here)"),
    "int_type": ("应为整数", "should be a whole number"),
    "int_from_float": ("应为整数，不能有小数部分", "should be a whole number, without a fraction"),
    "float_type": ("应为数字", "should be a number"),
    "bool_type": ("应为 true 或 false", "should be true or false"),
    "string_type": ("应为文本", "should be text"),
    "string_too_short": (
        "至少 {min_length} 个字符",
        "should have at least {min_length} character(s)",
    ),
    "string_too_long": (
        "最多 {max_length} 个字符",
        "should have at most {max_length} character(s)",
    ),
    "string_pattern_mismatch": ("格式不符合 {pattern}", "should match {pattern}"),
    "greater_than": ("应大于 {gt}", "should be greater than {gt}"),
    "greater_than_equal": ("应大于或等于 {ge}", "should be greater than or equal to {ge}"),
    "less_than": ("应小于 {lt}", "should be less than {lt}"),
    "less_than_equal": ("应小于或等于 {le}", "should be less than or equal to {le}"),
    "multiple_of": ("应为 {multiple_of} 的倍数", "should be a multiple of {multiple_of}"),
    "literal_error": ("应为以下之一：{expected}", "should be one of {expected}"),
    "dict_type": ("应为表（键 = 值）", "should be a table"),
    "list_type": ("应为列表", "should be a list"),
    "too_short": ("至少 {min_length} 项", "should have at least {min_length} item(s)"),
    "too_long": ("最多 {max_length} 项", "should have at most {max_length} item(s)"),
    "time_type": ("应为时间（时:分）", "should be a time (HH:MM)"),
    "union_tag_invalid": (
        "{discriminator} 的值 {tag} 无效，应为以下之一：{expected_tags}",
        "{discriminator} {tag} is not known; use one of {expected_tags}",
    ),
    "union_tag_not_found": ("缺少 {discriminator}", "{discriminator} is missing"),
    "url_parsing": ("不是有效的网址", "not a valid URL"),
    "url_scheme": (
        "网址协议应为 {expected_schemes}",
        "the URL scheme should be {expected_schemes}",
    ),
    "value_error": ("取值无效：{message}", "{message}"),
    "undefined_queue": (
        "队列 {value} 未在 {file} 中定义",
        "queue {value} is not defined in {file}",
    ),
    "undefined_node": (
        "菜单节点 {value} 未在 {file} 中定义",
        "node {value} is not defined in {file}",
    ),
    "undefined_transfer_target": (
        "转接目标 {value} 未在 {file} 的 [transfer_targets] 中定义",
        "transfer target {value} is not defined in {file} [transfer_targets]",
    ),
    "edge": ("SIP 边缘无法采用：{message}", "the SIP edge cannot use it: {message}"),
    "syntax": ("语法错误：{message}", "syntax error: {message}"),
}

# pydantic types that say the same to an admin as another type: type -> the type it reads as
SAME_AS: dict[str, str] = {
    "int_parsing": "int_type",
    "float_parsing": "float_type",
    "decimal_parsing": "float_type",
    "bool_parsing": "bool_type",
    "model_type": "dict_type",
    "model_attributes_type": "dict_type",
    "time_parsing": "time_type",
    "enum": "literal_error",
    "assertion_error": "value_error",
}

# check id: zh-CN (the English is the check's own text); the key it blames is shown beside
CHECKS_ZH: dict[str, str] = {
    "time_hhmm": "应为时间（时:分，00:00-23:59），实际为 {value}",
    "prompt_source": "提示音必须在 text 和 file 中二选一",
    "digit_twice": "按键 {digit} 用了两次",
    "regex": "不是有效的正则表达式：{reason}",
    "entry_undefined": "入口节点 {node} 未在 [nodes] 中定义",
    "node_undefined": "节点 {node} 未定义",
    "overflow_needed": "no_agents 为 'overflow' 时需要 [overflow] 表（含 to）",
    "overflow_undefined": "溢出目标队列 {queue} 未定义",
    "overflow_self": "队列不能溢出到自己",
    "shift_empty": "班次的开始和结束时间不能相同",
    "shift_wraps": "班次结束（{end}）早于开始（{start}）；跨过午夜的班次请设 overnight = true",
    "shift_not_overnight": "已设 overnight = true，但 {start}-{end} 并未跨过午夜",
    "sla_minutes": "填写 minutes，或设 agreed = true（二者只选其一）",
    "category_department": "部门 {department} 未在 [departments] 中定义",
    "category_sla": "时限类别 {sla} 未在 [sla] 中定义",
    "tracks_missing": "缺少紧急程度：{missing}",
    "pattern_syntax": "{pattern}：只能使用数字、[...] 字符类、\\d、{m,n}、?、| 和括号",
    "pattern_regex": "{pattern}：不是正则表达式（{reason}）",
    "pattern_empty": "{pattern} 会匹配空号码",
    "prefix_syntax": "{prefix}：国际前缀应为 00 加国家代码，例如 “00852”",
    "outbound_trunk_undefined": "中继 {trunk} 未定义",
    "target_trunk_undefined": "中继 {trunk} 未定义",
    "target_number_refused": "{refusal}",  # the dial plan's refusal is in both languages
    "did_twice": "号码 {number} 重复列出",
    "scorecard_undefined": "评分表 {scorecard} 未在 [scorecards] 中定义",
    "edge_domain": "sip_domain 的值 {domain} 不是域名",
    "edge_trunk_tls": "中继 {code}：边缘未为中继配置 TLS 模块，transport 请用 udp 或 tcp",
    "edge_trunk_host": "中继 {code} 的 host {host} 不是主机名或 IP 地址",
    "edge_trunk_resolve": "中继 {code} 的 host {host} 无法解析：{reason}",
    "edge_trunk_prefix": "中继 {code} 的 outbound_prefix {prefix} 只能包含数字",
    "edge_quote": "值 {value} 不能写入边缘配置",
}


def _english_checks() -> dict[str, str]:
    """Each check's English as the page fills it in: without the key (shown beside), and with
    ``str.format``'s doubled braces single again."""
    texts = {check: text for check, (_key, text) in CHECKS.items()} | EDGE_CHECKS
    return {check: text.replace("{{", "{").replace("}}", "}") for check, text in texts.items()}


CONFIG_PROBLEM_MESSAGES: dict[str, dict[str, str]] = {
    "admin.config_refused": {
        "zh-CN": "{file}.toml 有 {count} 处问题，未保存任何内容",
        "en": "{file}.toml: {count} problem(s); nothing was stored",
    },
    "admin.problem.got": {"zh-CN": "（实际为 {input}）", "en": " (got {input})"},
    **{
        f"admin.problem.{kind}": {"zh-CN": zh, "en": en}
        for kind, (zh, en) in (
            PROBLEMS | {alias: PROBLEMS[to] for alias, to in SAME_AS.items()}
        ).items()
    },
    **{
        f"admin.check.{check}": {"zh-CN": CHECKS_ZH[check], "en": en}
        for check, en in _english_checks().items()
    },
}
