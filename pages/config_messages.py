"""The admin editor's validation messages (``admin.problem.<type>``), in zh-CN and English.

One entry per problem ``type`` of :class:`config.loader.Problem` (pydantic's error types and
this project's own); ``{name}`` is filled from the problem's ``context`` by the page's script
(``pages/static/admin.js``), and ``admin.problem.got`` is added when the context carries the
value that was sent (``input``). A type without an entry shows ``admin.problem.value_error``
with the English text: never an empty message.
"""

from __future__ import annotations

CONFIG_PROBLEM_MESSAGES: dict[str, dict[str, str]] = {
    "admin.config_refused": {
        "zh-CN": "{file}.toml 有 {count} 处问题，未保存任何内容",
        "en": "{file}.toml: {count} problem(s); nothing was stored",
    },
    "admin.problem.got": {"zh-CN": "（实际为 {input}）", "en": " (got {input})"},
    "admin.problem.missing": {"zh-CN": "缺少必填项", "en": "required key is missing"},
    "admin.problem.extra_forbidden": {
        "zh-CN": "不认识的键（此处不允许）",
        "en": "unknown key (not allowed here)",
    },
    "admin.problem.int_type": {"zh-CN": "应为整数", "en": "should be a whole number"},
    "admin.problem.int_parsing": {"zh-CN": "应为整数", "en": "should be a whole number"},
    "admin.problem.int_from_float": {
        "zh-CN": "应为整数，不能有小数部分",
        "en": "should be a whole number, without a fraction",
    },
    "admin.problem.float_type": {"zh-CN": "应为数字", "en": "should be a number"},
    "admin.problem.float_parsing": {"zh-CN": "应为数字", "en": "should be a number"},
    "admin.problem.decimal_parsing": {"zh-CN": "应为数字", "en": "should be a number"},
    "admin.problem.bool_type": {"zh-CN": "应为 true 或 false", "en": "should be true or false"},
    "admin.problem.bool_parsing": {
        "zh-CN": "应为 true 或 false",
        "en": "should be true or false",
    },
    "admin.problem.string_type": {"zh-CN": "应为文本", "en": "should be text"},
    "admin.problem.string_too_short": {
        "zh-CN": "至少 {min_length} 个字符",
        "en": "should have at least {min_length} character(s)",
    },
    "admin.problem.string_too_long": {
        "zh-CN": "最多 {max_length} 个字符",
        "en": "should have at most {max_length} character(s)",
    },
    "admin.problem.string_pattern_mismatch": {
        "zh-CN": "格式不符合 {pattern}",
        "en": "should match {pattern}",
    },
    "admin.problem.greater_than": {"zh-CN": "应大于 {gt}", "en": "should be greater than {gt}"},
    "admin.problem.greater_than_equal": {
        "zh-CN": "应大于或等于 {ge}",
        "en": "should be greater than or equal to {ge}",
    },
    "admin.problem.less_than": {"zh-CN": "应小于 {lt}", "en": "should be less than {lt}"},
    "admin.problem.less_than_equal": {
        "zh-CN": "应小于或等于 {le}",
        "en": "should be less than or equal to {le}",
    },
    "admin.problem.multiple_of": {
        "zh-CN": "应为 {multiple_of} 的倍数",
        "en": "should be a multiple of {multiple_of}",
    },
    "admin.problem.literal_error": {
        "zh-CN": "应为以下之一：{expected}",
        "en": "should be one of {expected}",
    },
    "admin.problem.enum": {
        "zh-CN": "应为以下之一：{expected}",
        "en": "should be one of {expected}",
    },
    "admin.problem.dict_type": {"zh-CN": "应为表（键 = 值）", "en": "should be a table"},
    "admin.problem.model_type": {"zh-CN": "应为表（键 = 值）", "en": "should be a table"},
    "admin.problem.model_attributes_type": {
        "zh-CN": "应为表（键 = 值）",
        "en": "should be a table",
    },
    "admin.problem.list_type": {"zh-CN": "应为列表", "en": "should be a list"},
    "admin.problem.too_short": {
        "zh-CN": "至少 {min_length} 项",
        "en": "should have at least {min_length} item(s)",
    },
    "admin.problem.too_long": {
        "zh-CN": "最多 {max_length} 项",
        "en": "should have at most {max_length} item(s)",
    },
    "admin.problem.time_type": {"zh-CN": "应为时间（时:分）", "en": "should be a time (HH:MM)"},
    "admin.problem.time_parsing": {
        "zh-CN": "应为时间（时:分）",
        "en": "should be a time (HH:MM)",
    },
    "admin.problem.union_tag_invalid": {
        "zh-CN": "{discriminator} 的值 {tag} 无效，应为以下之一：{expected_tags}",
        "en": "{discriminator} {tag} is not known; use one of {expected_tags}",
    },
    "admin.problem.union_tag_not_found": {
        "zh-CN": "缺少 {discriminator}",
        "en": "{discriminator} is missing",
    },
    "admin.problem.url_parsing": {"zh-CN": "不是有效的网址", "en": "not a valid URL"},
    "admin.problem.url_scheme": {
        "zh-CN": "网址协议应为 {expected_schemes}",
        "en": "the URL scheme should be {expected_schemes}",
    },
    "admin.problem.value_error": {"zh-CN": "取值无效：{message}", "en": "{message}"},
    "admin.problem.assertion_error": {"zh-CN": "取值无效：{message}", "en": "{message}"},
    "admin.problem.undefined_queue": {
        "zh-CN": "队列 {value} 未在 {file} 中定义",
        "en": "queue {value} is not defined in {file}",
    },
    "admin.problem.undefined_node": {
        "zh-CN": "菜单节点 {value} 未在 {file} 中定义",
        "en": "node {value} is not defined in {file}",
    },
    "admin.problem.undefined_transfer_target": {
        "zh-CN": "转接目标 {value} 未在 {file} 的 [transfer_targets] 中定义",
        "en": "transfer target {value} is not defined in {file} [transfer_targets]",
    },
    "admin.problem.edge": {
        "zh-CN": "SIP 边缘无法采用：{message}",
        "en": "the SIP edge cannot use it: {message}",
    },
    "admin.problem.syntax": {"zh-CN": "语法错误：{message}", "en": "syntax error: {message}"},
}
