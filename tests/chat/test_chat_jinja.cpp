// Jinja2 semantics the corpus does not cover, each checked against Python's jinja2 3.1
// (ImmutableSandboxedEnvironment, trim_blocks, lstrip_blocks, loopcontrols, transformers' tojson
// and raise_exception). The expected strings were produced by running jinja2 on the same source.
#include <catch2/catch.hpp>

#include <string>

#include "qlm/chat_template.hpp"

namespace {

struct JinjaCase {
  const char* source;
  const char* variables_json;
  bool renders;  // true: `expected` is the output; false: the error's "Class: message"
  const char* expected;
};

const JinjaCase kCases[] = {
    {"{{ [1,'a',None,True,1.0,{'a':(1,2)}] }}", "{}", true,
     "[1, 'a', None, True, 1.0, {'a': (1, 2)}]"},
    {"{{ none }}|{{ 1e20 }}|{{ 0.0001 }}|{{ 1/3 }}|{{ 7//2 }}|{{ 7/7 }}|{{ -7//2 }}|{{ -7 % 3 "
     "}}|{{ 2**10 }}|{{ 1e-5 }}|{{ 123456789012345678.0 }}",
     "{}", true,
     "None|1e+20|0.0001|0.3333333333333333|3|1.0|-4|2|1024|1e-05|1.2345678901234568e+17"},
    {"{{ 'a' ~ none ~ 1.5 ~ [1] ~ undefined_thing }}", "{}", true, "aNone1.5[1]"},
    {"{{ {'a': 1}|string }} {{ ('a',)|string }} {{ \"it's\"|string }} {{ ['a\\nb', \"x'y\\\"\"] }}",
     "{}", true, "{'a': 1} ('a',) it's ['a\\nb', 'x\\'y\"']"},
    {"{% for a, b in {'x':1, 'y': 2}.items() %}{{a}}{{b}}{{ loop.index }}/{{ loop.length }}{% if "
     "not loop.last %},{% endif %}{% endfor %}",
     "{}", true, "x11/2,y22/2"},
    {"{{ y is defined }} {{ y|default('d') }} {{ none|default('d') }} {{ none|default('d', true) "
     "}}",
     "{}", true, "False d None d"},
    {"{% for i in [1,2,3] %}{% if loop.first %}{% set x = 5 %}{% endif %}[{{ x }}]{% endfor %}{{ x "
     "}}",
     "{}", true, "[5][][]"},
    {"{% set x = 1 %}{% macro m() %}{{ x }}{% endmacro %}{% set x = 2 %}{{ m() }}", "{}", true,
     "2"},
    {"{{ 'a b  c'.split() }} {{ 'a,b'.split(',') }} {{ ' x '.strip() }} {{ \"they're "
     "ok-fine\".title() }} {{ \"they're ok-fine\"|title }}",
     "{}", true, "['a', 'b', 'c'] ['a', 'b'] x They'Re Ok-Fine They're Ok-Fine"},
    {"{{ range(3)|list }} {{ [3,1,2]|sort }} {{ [1,2]|join(',') }} {{ [1,2]|reverse|list }} {{ "
     "'abc'|reverse }}",
     "{}", true, "[0, 1, 2] [1, 2, 3] 1,2 [2, 1] cba"},
    {"{{ {'b':1,'a':2}|dictsort }} {{ {'b':1}.items()|list }} {{ {'b':1,'a':2}|items|list }}", "{}",
     true, "[('a', 2), ('b', 1)] [('b', 1)] [('b', 1), ('a', 2)]"},
    {"{{ [1,2]|map('string')|list }} {{ [{'a':1},{'b':2}]|map(attribute='a')|list }} {{ "
     "['a','b']|map('upper')|join }}",
     "{}", true, "['1', '2'] [1, Undefined] AB"},
    {"{{ 'abc'|first }}|{{ []|first }}|{{ [1,2]|last }}|{{ 'ab' * 2 }}", "{}", true, "a||2|abab"},
    {"{{ 1.5|int }} {{ '3'|int }} {{ 'x'|int }} {{ '2.5'|int }} {{ 3|float }} {{ 'a'|float }} {{ "
     "True|int }}",
     "{}", true, "1 3 0 2 3.0 0.0 1"},
    {"{{ 'x\\ny'|indent(2) }}|{{ 'x\\n\\ny\\n'|indent(2, true) }}|{{ 'x\\ny'|indent('> ') }}|{{ "
     "'a\\n\\nb'|indent(2, blank=true) }}",
     "{}", true, "x\n  y|  x\n\n  y\n|x\n> y|a\n  \n  b"},
    {"{% for a in [1,2] %}{{ loop.previtem }}{{ loop.nextitem }}{% endfor %}", "{}", true, "21"},
    {"{{ [1,2] is iterable }} {{ none is iterable }} {{ 1 is number }} {{ true is number }} {{ "
     "true is integer }} {{ 1.0 is float }} {{ {} is mapping }} {{ 'a' is sequence }} {{ x is "
     "sequence }}",
     "{}", true, "True False True True False True True True True"},
    {"{{ namespace(a=1).a }}|{{ namespace(a=1).b }}", "{}", true, "1|"},
    {"{{ 'Hello'[1:3] }} {{ 'Hello'[::-1] }} {{ [1,2,3,4][1:] }} {{ [1,2,3,4][-2:] }} {{ "
     "[1,2,3,4][::2] }} {{ 'héllo'[1] }} {{ 'héllo'|length }}",
     "{}", true, "el olleH [2, 3, 4] [3, 4] [1, 3] é 5"},
    {"{%- raw -%}  {{ not }} {% raw %} {%- endraw %}|", "{}", true, "{{ not }} {% raw %}|"},
    {"a\n  {% if true %}\n  b\n  {% endif %}\nc\n", "{}", true, "a\n  b\nc"},
    {"a  {%- if true -%}  b  {%- endif -%}  c {# comment #} d\n    {# c2 #}\ne", "{}", true,
     "abc  d\ne"},
    {"{% set s %}  x {{ 1 }}  {% endset %}[{{ s }}]{% set t | upper %}abc{% endset %}{{ t }}", "{}",
     true, "[  x 1  ]ABC"},
    {"{% macro f(a, b=2) %}{{ a }}-{{ b }}-{{ kwargs }}-{{ varargs }}{% endmacro %}{{ f(1) }}|{{ "
     "f(1, 3) }}|{{ f(b=5, a=4) }}|{{ f(1,2,3, z=1) }}",
     "{}", true, "1-2-{}-()|1-3-{}-()|4-5-{}-()|1-2-{'z': 1}-(3,)"},
    {"{% macro w() %}<{{ caller() }}>{% endmacro %}{% call w() %}in{% endcall %}", "{}", true,
     "<in>"},
    {"{% filter upper %}abc{{ 'd' }}{% endfilter %}", "{}", true, "ABCD"},
    {"{% for x in [1,2,3,4] if x is odd %}{{ x }}{{ loop.length }}{% else %}none{% endfor %}|{% "
     "for x in [] %}{% else %}empty{% endfor %}",
     "{}", true, "1232|empty"},
    {"{% for x in range(10) %}{% if x == 2 %}{% continue %}{% endif %}{% if x == 4 %}{% break %}{% "
     "endif %}{{ x }}{% endfor %}",
     "{}", true, "013"},
    {"{{ 1 if false }}|{{ 1 if true else 2 }}|{{ 'a' if none else 'b' }}", "{}", true, "|1|b"},
    {"{{ [1,2,3]|select('odd')|list }} {{ [1,2,3]|reject('odd')|list }} {{ "
     "[{'a':1},{'a':2}]|selectattr('a', 'equalto', 2)|list }} {{ "
     "[{'a':1},{'b':2}]|rejectattr('a')|list }}",
     "{}", true, "[1, 3] [2] [{'a': 2}] [{'b': 2}]"},
    {"{{ ['b','A','a']|unique|list }} {{ ['b','A','a']|sort }} {{ "
     "['b','A','a']|sort(case_sensitive=true) }} {{ [{'n':2},{'n':1}]|sort(attribute='n') }}",
     "{}", true, "['b', 'A'] ['A', 'a', 'b'] ['A', 'a', 'b'] [{'n': 1}, {'n': 2}]"},
    {"{{ {'a': [1, 2.5, 'é', none, true]}|tojson }} {{ {'a': {'b': []}}|tojson(indent=2) }} {{ "
     "'x\"\\n'|tojson }}",
     "{}", true,
     "{\"a\": [1, 2.5, \"é\", null, true]} {\n  \"a\": {\n    \"b\": []\n  }\n} \"x\\\"\\n\""},
    {"{{ 'abc'.startswith('a') }} {{ 'abc'.endswith(('x', 'c')) }} {{ 'a-b-c'.replace('-', '+', 1) "
     "}} {{ 'AbC'.lower() }} {{ 'abc'.upper() }} {{ 'xxhixx'.strip('x') }} {{ "
     "'a\\nb\\r\\nc'.splitlines() }} {{ 'a,b,c'.rsplit(',', 1) }}",
     "{}", true, "True True a+b-c abc ABC hi ['a', 'b', 'c'] ['a,b', 'c']"},
    {"{{ {'a': 1}.get('a') }} {{ {'a': 1}.get('b') }} {{ {'a': 1}.get('b', 5) }} {{ {'a': "
     "1}.keys()|list }} {{ {'a': 1}.values()|list }}",
     "{}", true, "1 None 5 ['a'] [1]"},
    {"{{ 'x' in 'xyz' }} {{ 1 in [1,2] }} {{ 'a' in {'a': 1} }} {{ 3 not in [1] }} {{ 1 < 2 < 3 }} "
     "{{ 1 == 1.0 }} {{ true == 1 }}",
     "{}", true, "True True True True True True True"},
    {"{{ -3|abs }} {{ (2.567)|round(1) }} {{ [1,2,3]|sum }} {{ [3,1]|min }} {{ [3,1]|max }} {{ "
     "'a<b'|e }}",
     "{}", true, "3 2.6 6 1 3 a&lt;b"},
    {"{{ 'x' + y }}", "{}", false, "UndefinedError: 'y' is undefined"},
    {"{{ y.z }}", "{}", false, "UndefinedError: 'y' is undefined"},
    {"{{ {'a':1}.b.c }}", "{}", false, "UndefinedError: 'dict object' has no attribute 'b'"},
    {"{{ 'abc'[5] }}|{{ none.x }}", "{}", true, "|"},
    {"{{ x|length }}", "{\"x\": null}", false, "TypeError: object of type 'NoneType' has no len()"},
    {"{{ [1]|map('string')|tojson }}", "{}", false,
     "TypeError: Object of type generator is not JSON serializable"},
    {"{{ 'a' in none }}", "{}", false, "TypeError: argument of type 'NoneType' is not iterable"},
    {"{{ 1 + 'a' }}", "{}", false, "TypeError: unsupported operand type(s) for +: 'int' and 'str'"},
    {"{{ 'a' + 1 }}", "{}", false, "TypeError: can only concatenate str (not \"int\") to str"},
    {"{% for x in none %}{% endfor %}", "{}", false,
     "TypeError: 'NoneType' object is not iterable"},
    {"{% set l = [1] %}{{ l.append(2) }}", "{}", false,
     "SecurityError: access to attribute 'append' of 'list' object is unsafe."},
    {"{{ raise_exception('boom') }}", "{}", false, "TemplateError: boom"},
    {"{{ 1/0 }}", "{}", false, "ZeroDivisionError: division by zero"},
    {"{{ 'a' < 1 }}", "{}", false,
     "TypeError: '<' not supported between instances of 'str' and 'int'"},
    {"{% set a, b = [1] %}", "{}", false,
     "ValueError: not enough values to unpack (expected 2, got 1)"},
    {"{{ x.items()|list }} {{ x|tojson }} {{ x }}", "{\"x\": {\"z\": 1, \"a\": [1.5, null]}}", true,
     "[('z', 1), ('a', [1.5, None])] {\"z\": 1, \"a\": [1.5, null]} {'z': 1, 'a': [1.5, None]}"},
    {"{{ '%s' }} {{ \"\\u00e9\\x41\\t|\" }} {{ 'a' 'b' }}", "{}", true, "%s éA\t| ab"},
    {"{% if x is not none and x is string %}s{% elif x is number %}n{% else %}o{% endif %}",
     "{\"x\": 3}", true, "n"},
    {"{{ ns }}{% set ns = namespace(n=0) %}{% for i in [1,2,3] %}{% set ns.n = ns.n + i %}{% "
     "endfor %}{{ ns.n }}",
     "{}", true, "6"},
    {"{{ ('a', 'b') }} {{ () }} {{ (1,) }} {{ [] }} {{ {} }} {{ 1.0 }} {{ 10.0**20 }} {{ -0.0 }} "
     "{{ 2.5e-7 }}",
     "{}", true, "('a', 'b') () (1,) [] {} 1.0 1e+20 -0.0 2.5e-07"},
    {"{{ ' x​'|string }} {{ [' ', '\\x01', ' ', 'é'] }}", "{}", true,
     " x​ ['\\xa0', '\\x01', '\\u2028', 'é']"},
    {"{{ 'hello world'|capitalize }} {{ 'HELLO'|lower }} {{ ' a '|trim }}|{{ 'xax'|trim('x') }} {{ "
     "'a b'|replace(' ', '_') }}",
     "{}", true, "Hello world hello a|a a_b"},
    {"{{ x.tool_calls is defined }} {{ x['content'] }} {{ x.content }}",
     "{\"x\": {\"content\": \"c\"}}", true, "False c c"},
    {"{% for m in msgs %}{{ loop.index0 }}{{ loop.revindex }}{{ loop.cycle('a','b') }}{% endfor %}",
     "{\"msgs\": [1, 2, 3]}", true, "03a12b21a"},
    {"x {%+ if true %}y{% endif %}\n  {%+ if true %}z{% endif %}", "{}", true, "x y  z"},
    {"line {% if true %}\nA{% endif %} {{ 1 }}   {% if true %}B{% endif %}\n\t{% for i in [1] "
     "%}\n\t\t{{ i }}\n\t{% endfor %}\nend\n\n",
     "{}", true, "line A 1   B\t\t1\nend\n"},
    {"a\r\nb{% if true %}\r\nc{% endif %}\r\n", "{}", true, "a\nbc"},
    {"{{- ' x ' -}}\n\n  {{ 'y' }}  \n{#- c -#}\n  z", "{}", true, " x yz"},
    {"{% for k in {'b': 1, 'a': 2} %}{{ k }}{% endfor %} {{ {'a': {'b': 1}}['a']['b'] }} {{ [[1, "
     "2]][0][1] }} {{ {'x': 1}.x }}",
     "{}", true, "ba 1 2 1"},
    {"{{ x | selectattr('role', 'equalto', 'system') | list | length }} {{ x[0].role|upper }} {{ "
     "x|map(attribute='role')|join(', ') }}",
     "{\"x\": [{\"role\": \"system\"}, {\"role\": \"user\"}]}", true, "1 SYSTEM system, user"},
    {"{{ '{{ not }}' }} {{ \"{% x %}\" }}", "{}", true, "{{ not }} {% x %}"},
    {"{% set d = {'a': 1} %}{{ d.update({'b': 2}) }}", "{}", false,
     "SecurityError: access to attribute 'update' of 'dict' object is unsafe."},
    {"{{ undefined_fn() }}", "{}", false, "UndefinedError: 'undefined_fn' is undefined"},
    {"{{ 'abc'() }}", "{}", false, "TypeError: 'str' object is not callable"},
    {"{{ x is none }} {{ x is not none }} {{ y is undefined }} {{ 'AB' is upper }} {{ 4 is "
     "divisibleby 2 }} {{ 3 is even }} {{ 1 is sameas true }} {{ none is sameas none }}",
     "{\"x\": null}", true, "True False True True True False False True"},
    {"{{ [1, [2, (3, 'x')]]|string }} {{ {1: 'a', 'k': {}}|string }} {{ {'a': True}|tojson }} {{ "
     "{1: 2}|tojson }}",
     "{}", true, "[1, [2, (3, 'x')]] {1: 'a', 'k': {}} {\"a\": true} {\"1\": 2}"},
    {"{{ 'a' ~ 1 + 2 }}|{{ 1 + 2 * 3 - 4 / 2 }}|{{ not 1 == 2 }}|{{ -2 ** 2 }}|{{ 2 ** 3 ** 2 "
     "}}|{{ 10 // 3 * 3 }}|{{ 'x' if 1 > 2 else 'y' ~ 'z' }}",
     "{}", false, "TypeError: can only concatenate str (not \"int\") to str"},
    {"{{ x.content.split('</think>')[-1].lstrip('\\n') }}",
     "{\"x\": {\"content\": \"<think>\\nhm\\n</think>\\n\\nanswer\"}}", true, "answer"},
    {"{{ '%s and %d'|format('a', 3) }}", "{}", true, "a and 3"},
    {"{% set x = [1, 2] + [3] %}{{ x }} {{ (1, 2) + (3,) }} {{ [0] * 3 }} {{ 'ab' in ['ab'] }}",
     "{}", true, "[1, 2, 3] (1, 2, 3) [0, 0, 0] True"},
    {"{{ messages[0]['content'] if messages else 'none' }} {{ messages|length > 0 and "
     "messages[-1].role == 'user' }}",
     "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}", true, "hi True"},
    {"{{ 'x'.join(['a', 'b']) }} {{ 'abcabc'.count('b') }} {{ 'abc'.find('c') }} {{ '  '.isspace() "
     "}} {{ '12'.isdigit() }}",
     "{}", true, "axb 2 2 True True"},
    {"{{ 5 > none }}", "{}", false,
     "TypeError: '>' not supported between instances of 'int' and 'NoneType'"},
    {"{{ [1] + none }}", "{}", false,
     "TypeError: can only concatenate list (not \"NoneType\") to list"},
    {"{{ none + 1 }}", "{}", false,
     "TypeError: unsupported operand type(s) for +: 'NoneType' and 'int'"},
    {"{{ undefined_x + 1 }}", "{}", false, "UndefinedError: 'undefined_x' is undefined"},
    {"{{ undefined_x['a'] }}", "{}", false, "UndefinedError: 'undefined_x' is undefined"},
    {"{{ messages[5].content }}", "{\"messages\": []}", false,
     "UndefinedError: list object has no element 5"},
    {"{{ '%5s|%-3d|%.2f|%%|%r' % ('ab', 7, 3.14159, 'q') }} {{ '%d items'|format(3) }} {{ 'v=%s' % "
     "none }}",
     "{}", true, "   ab|7  |3.14|%|'q' 3 items v=None"},
};

}  // namespace

TEST_CASE("chat: jinja2 semantics match Python's jinja2", "[chat]") {
  int index = 0;
  for (const JinjaCase& c : kCases) {
    CAPTURE(index, c.source);
    ++index;
    qlm::ChatTemplateOptions options;
    options.variables_json = c.variables_json;
    auto t = qlm::ChatTemplate::parse(c.source, "case");
    REQUIRE(t.ok());
    auto r = t->render_json("[]", options);
    if (c.renders) {
      INFO((r.ok() ? std::string() : r.error().message));
      REQUIRE(r.ok());
      CHECK(*r == c.expected);
    } else {
      REQUIRE_FALSE(r.ok());
      std::string message = r.error().message;
      std::string expected = c.expected;
      CAPTURE(message, expected);
      CHECK(message.size() >= expected.size());
      CHECK(message.compare(message.size() - expected.size(), expected.size(), expected) == 0);
    }
  }
}
