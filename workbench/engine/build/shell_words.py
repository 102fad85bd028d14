"""Docker's variable substitution and word splitting for Dockerfile arguments (pure, no IO).

The semantics are those of BuildKit's shell lexer (`frontend/dockerfile/shell/lex.go`), which
the classic builder shares: `$v`, `${v}`, `${v:-w}`, `${v-w}`, `${v:+w}`, `${v+w}`, `${v:?msg}`,
`${v?msg}`, `${v#pat}`, `${v##pat}`, `${v%pat}`, `${v%%pat}`, `${v/pat/repl}`, `${v//pat/repl}`;
single quotes are literal, double quotes allow `$` and escape only `"`, `$` and the escape
character; outside quotes the escape character (backslash, or backtick with `# escape=`)
makes the next character literal. Word splitting happens after substitution and splits the
values of unquoted variables too.

`Lexer.process(word, env)` returns the substituted text, the split words and which variables
were looked up (found / not found), so a caller can tell which build args an instruction used.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from workbench.errors import InvalidArgument

__all__ = ["Lexer", "ShellWordError", "WordResult", "env_from_list", "expand", "expand_words",
           "go_quote", "is_space"]

_SPECIAL_PARAMS = frozenset("@*#?-$!0")


class ShellWordError(InvalidArgument):
    """A substitution the lexer cannot process (bad `${...}`, unterminated quote, `${v:?}`)."""


def is_space(ch: str) -> bool:
    """Go's unicode.IsSpace (Python's isspace also counts the \\x1c-\\x1f separators)."""
    return ch.isspace() and ch not in "\x1c\x1d\x1e\x1f"


def _is_digit(ch: str) -> bool:
    return unicodedata.category(ch) == "Nd"


def go_quote(s: str) -> str:
    """Go's strconv.Quote: a double-quoted literal with Go escapes."""
    out = ['"']
    for ch in s:
        o = ord(ch)
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch in _GO_ESC:
            out.append(_GO_ESC[ch])
        elif o < 0x20 or o == 0x7F:
            out.append(f"\\x{o:02x}")
        elif o >= 0x80 and not ch.isprintable():
            out.append(f"\\u{o:04x}" if o <= 0xFFFF else f"\\U{o:08x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


_GO_ESC = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t",
           "\v": "\\v"}


def env_from_list(env: Iterable[str]) -> dict[str, str]:
    """`["K=V", ...]` → mapping; a later duplicate key wins, a bare `K` maps to ""."""
    out: dict[str, str] = {}
    for item in env:
        k, _, v = item.partition("=")
        out[k] = v
    return out


@dataclass(frozen=True, slots=True)
class WordResult:
    text: str                      # the word after substitution and quote removal
    words: tuple[str, ...]         # the same, split into words (quoted parts never split)
    matched: frozenset[str]        # variables looked up and found in env
    unmatched: frozenset[str]      # variables looked up and not found


class _Words:
    """Word splitting as the lexer builds its result, character by character."""

    def __init__(self) -> None:
        self.buf = ""
        self.words: list[str] = []
        self.in_word = False

    def add_char(self, ch: str) -> None:
        if is_space(ch):
            if self.in_word and self.buf:
                self.words.append(self.buf)
                self.buf, self.in_word = "", False
        else:
            self.add_raw(ch)

    def add_raw(self, s: str) -> None:
        self.buf += s
        self.in_word = True

    def add_string(self, s: str) -> None:
        for ch in s:
            self.add_char(ch)

    def finish(self) -> list[str]:
        if self.buf:
            self.words.append(self.buf)
            self.buf, self.in_word = "", False
        return self.words


class _Scanner:
    def __init__(self, text: str) -> None:
        self.text, self.pos = text, 0

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def next(self) -> str:
        if self.pos >= len(self.text):
            return ""
        ch = self.text[self.pos]
        self.pos += 1
        return ch


class Lexer:
    """Shell-word processing with Docker's options.

    Args:
        escape: the escape character, `\\` or `` ` `` (the Dockerfile's `# escape=`).
        raw_quotes: keep quote characters in the result (used to detect quoted heredoc names).
        raw_escapes: keep escape characters in the result.
        skip_unset: leave references to unset variables as written (`$X`, `${X}`).
        skip_quotes: treat quotes as ordinary characters (heredoc bodies: only `$` is special).
        heredoc_words: keep `<<` and the blanks after it in the same word, as BuildKit does
            when it looks for heredoc markers.
    """

    def __init__(self, escape: str = "\\", *, raw_quotes: bool = False, raw_escapes: bool = False,
                 skip_unset: bool = False, skip_quotes: bool = False,
                 heredoc_words: bool = False) -> None:
        self.escape = escape
        self.raw_quotes = raw_quotes
        self.raw_escapes = raw_escapes
        self.skip_unset = skip_unset
        self.skip_quotes = skip_quotes
        self.heredoc_words = heredoc_words

    def process(self, word: str, env: Mapping[str, str]) -> WordResult:
        """Substitute variables in `word`, remove quotes and split it into words.

        Raises:
            ShellWordError: with BuildKit's text, e.g. `failed to process "${a": syntax error:
                missing '}'`.
        """
        run = _Run(self, word, env)
        try:
            text, words = run.stop_on("", self.raw_escapes)
        except ShellWordError as err:
            raise ShellWordError(f"failed to process {go_quote(word)}: {err.message}") from None
        return WordResult(text, tuple(words), frozenset(run.matched), frozenset(run.unmatched))

    def word(self, word: str, env: Mapping[str, str]) -> str:
        return self.process(word, env).text

    def words(self, word: str, env: Mapping[str, str]) -> list[str]:
        return list(self.process(word, env).words)


class _Run:
    """One pass of the lexer over one input (the state Go keeps in shellWord)."""

    def __init__(self, lex: Lexer, text: str, env: Mapping[str, str]) -> None:
        self.lex, self.sc, self.env = lex, _Scanner(text), env
        self.raw_escapes = lex.raw_escapes
        self.matched: set[str] = set()
        self.unmatched: set[str] = set()

    def stop_on(self, stop: str, raw_escapes: bool) -> tuple[str, list[str]]:
        saved, self.raw_escapes = self.raw_escapes, raw_escapes
        try:
            return self._stop_on(stop)
        finally:
            self.raw_escapes = saved

    def _stop_on(self, stop: str) -> tuple[str, list[str]]:
        sc, esc = self.sc, self.lex.escape
        result: list[str] = []
        words = _Words()
        while sc.peek():
            ch = sc.peek()
            if stop and ch == stop:
                sc.next()
                return "".join(result), words.finish()
            special = self._special(ch)
            if special is not None:
                tmp = special()
                result.append(tmp)
                if ch == "$":
                    words.add_string(tmp)
                else:
                    words.add_raw(tmp)
                continue
            ch = sc.next()
            if ch == esc:
                if self.raw_escapes:
                    words.add_raw(ch)
                    result.append(ch)
                ch = sc.next()
                if not ch:
                    break
                words.add_raw(ch)
            else:
                words.add_char(ch)
            result.append(ch)
        if stop:
            raise ShellWordError(f"unexpected end of statement while looking for matching {stop}")
        return "".join(result), words.finish()

    def _special(self, ch: str) -> Callable[[], str] | None:
        if ch == "$":
            return self.dollar
        if not self.lex.skip_quotes and ch == "'":
            return self.single_quote
        if not self.lex.skip_quotes and ch == '"':
            return self.double_quote
        if self.lex.heredoc_words and ch == "<":
            return self.possible_heredoc
        return None

    def possible_heredoc(self) -> str:
        sc = self.sc
        sc.next()
        if sc.peek() != "<":
            return "<"
        sc.next()
        space = []
        while sc.peek() and sc.peek() in " \t":
            space.append(sc.next())
        return "<<" + "".join(space)

    def single_quote(self) -> str:
        sc = self.sc
        first = sc.next()
        out = [first] if self.lex.raw_quotes else []
        while True:
            ch = sc.next()
            if not ch:
                raise ShellWordError(
                    "unexpected end of statement while looking for matching single-quote")
            if ch == "'":
                if self.lex.raw_quotes:
                    out.append(ch)
                return "".join(out)
            out.append(ch)

    def double_quote(self) -> str:
        sc, esc = self.sc, self.lex.escape
        first = sc.next()
        out = [first] if self.lex.raw_quotes else []
        while True:
            nxt = sc.peek()
            if not nxt:
                raise ShellWordError(
                    "unexpected end of statement while looking for matching double-quote")
            if nxt == '"':
                ch = sc.next()
                if self.lex.raw_quotes:
                    out.append(ch)
                return "".join(out)
            if nxt == "$":
                out.append(self.dollar())
                continue
            ch = sc.next()
            if ch == esc:
                if self.raw_escapes:
                    out.append(ch)
                after = sc.peek()
                if not after:
                    continue
                if after in ('"', "$", esc):
                    ch = sc.next()
            out.append(ch)

    def get_env(self, name: str) -> str | None:
        if name in self.env:
            self.matched.add(name)
            return self.env[name]
        self.unmatched.add(name)
        return None

    def name(self) -> str:
        sc = self.sc
        out: list[str] = []
        while sc.peek():
            ch = sc.peek()
            if not out and _is_digit(ch):
                while sc.peek() and _is_digit(sc.peek()):
                    out.append(sc.next())
                return "".join(out)
            if not out and ch in _SPECIAL_PARAMS:
                return sc.next()
            if not (ch.isalpha() or _is_digit(ch) or ch == "_"):
                break
            out.append(sc.next())
        return "".join(out)

    def dollar(self) -> str:
        sc = self.sc
        sc.next()
        if sc.peek() != "{":
            name = self.name()
            if not name:
                return "$"
            value = self.get_env(name)
            if value is None:
                return "$" + name if self.lex.skip_unset else ""
            return value
        sc.next()
        if not sc.peek():
            raise ShellWordError("syntax error: missing '}'")
        if sc.peek() in "{}:":
            raise ShellWordError("syntax error: bad substitution")
        name = self.name()
        ch = sc.next()
        if ch == "}":
            value = self.get_env(name)
            if value is None:
                return "${" + name + "}" if self.lex.skip_unset else ""
            return value
        if not ch:
            raise ShellWordError("syntax error: missing '}'")
        if ch == "/":
            return self._replace(name)
        chs, null_is_unset = ch, False
        if ch == ":":
            null_is_unset = True
            ch = sc.next()
            chs += ch
        if ch not in ("+", "-", "?", "#", "%"):
            raise ShellWordError(f"unsupported modifier ({chs}) in substitution")
        raw = ch in "#%"
        if null_is_unset and raw:
            raise ShellWordError(f"unsupported modifier ({chs}) in substitution")
        word = self._until("}", raw, "syntax error: missing '}'")
        value = self.get_env(name)
        if self.lex.skip_unset and value is None:
            return "${" + name + chs + word + "}"
        unset = value is None or (null_is_unset and value == "")
        if ch == "-":
            return word if unset else (value or "")
        if ch == "+":
            return "" if unset else word
        if ch == "?":
            if value is None:
                raise ShellWordError(f"{name}: {word or 'is not allowed to be unset'}")
            if null_is_unset and value == "":
                raise ShellWordError(f"{name}: {word or 'is not allowed to be empty'}")
            return value
        greedy = word.startswith(ch)
        if greedy:
            word = word[1:]
        if ch == "%":
            return _trim_suffix(word, value or "", greedy)
        return _trim_prefix(word, value or "", greedy)

    def _until(self, stop: str, raw: bool, eof_message: str) -> str:
        try:
            text, _ = self.stop_on(stop, raw)
        except ShellWordError:
            if not self.sc.peek():
                raise ShellWordError(eof_message) from None
            raise
        return text

    def _replace(self, name: str) -> str:
        replace_all = self.sc.peek() == "/"
        if replace_all:
            self.sc.next()
        pattern = self._until("/", True, "syntax error: missing '/' in ${}")
        replacement = self._until("}", True, "syntax error: missing '}'")
        value = self.get_env(name)
        if self.lex.skip_unset and value is None:
            return "${" + f"{name}/{pattern}/{replacement}" + "}"
        rx = _pattern_regex(pattern, greedy=True, anchored=False)
        value = value or ""
        if replace_all:
            return rx.sub(lambda _m: replacement, value)
        m = rx.search(value)
        return value if m is None else value[: m.start()] + replacement + value[m.end():]


def _pattern_regex(pattern: str, *, greedy: bool, anchored: bool) -> re.Pattern[str]:
    """A shell wildcard (`*`, `?`, `\\` escapes; no bracket expressions) as a regex."""
    out = ["^"] if anchored else []
    star = ".*" if greedy else ".*?"
    i = 0
    while i < len(pattern):
        tok = pattern[i]
        i += 1
        if tok == "*":
            out.append(star)
        elif tok == "?":
            out.append(".")
        elif tok == "\\":
            nxt = pattern[i] if i < len(pattern) else ""
            if nxt in ("}", "/"):
                continue
            if nxt not in ("*", "?", "\\"):
                raise ShellWordError(
                    f"invalid pattern ({pattern}) in substitution: invalid escape '\\{nxt}'")
            out.append(re.escape(nxt))
            i += 1
        else:
            out.append(re.escape(tok))
    return re.compile("".join(out), re.DOTALL)


def _trim_prefix(pattern: str, value: str, greedy: bool) -> str:
    m = _pattern_regex(pattern, greedy=greedy, anchored=True).search(value)
    return value if m is None else value[m.end():]


def _reverse_pattern(pattern: str) -> str:
    """Reverse a pattern keeping each escape before the character it escapes."""
    tokens: list[str] = []
    i = 0
    while i < len(pattern):
        if pattern[i] == "\\" and i + 1 < len(pattern):
            tokens.append(pattern[i: i + 2])
            i += 2
        else:
            tokens.append(pattern[i])
            i += 1
    return "".join(reversed(tokens))


def _trim_suffix(pattern: str, value: str, greedy: bool) -> str:
    return _trim_prefix(_reverse_pattern(pattern), value[::-1], greedy)[::-1]


def expand(word: str, env: Mapping[str, str], escape: str = "\\") -> str:
    """Substitute variables in one word (Docker's ProcessWord)."""
    return Lexer(escape).word(word, env)


def expand_words(word: str, env: Mapping[str, str], escape: str = "\\") -> list[str]:
    """Substitute variables, then split into words (Docker's ProcessWords)."""
    return Lexer(escape).words(word, env)
