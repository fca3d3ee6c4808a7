"""The Dockerfile parser: lines, directives, forms, flags, stages, located errors."""

from __future__ import annotations

import pytest

from llmos.build import DockerfileError, parse


def test_continuations_comments_and_blank_lines() -> None:
    df = parse("FROM scratch\nRUN echo a \\\n  # a comment inside\n\n    && echo b\n")
    (run,) = df.stages[0].instructions
    assert run.keyword == "RUN"
    assert run.args == ("echo a     && echo b",)
    assert (run.line, run.end_line) == (2, 5)
    assert not run.json


def test_escape_directive_uses_backtick() -> None:
    df = parse("# escape=`\nFROM scratch\nRUN dir c:\\ `\n  && echo x\n")
    assert df.escape == "`"
    assert df.stages[0].instructions[0].args == ("dir c:\\   && echo x",)


def test_directive_after_a_comment_is_a_comment() -> None:
    df = parse("# hello\n# escape=`\nFROM scratch\n")
    assert df.escape == "\\"


def test_bad_escape_and_duplicate_directive() -> None:
    with pytest.raises(DockerfileError, match="escape"):
        parse("# escape=x\nFROM scratch\n")
    with pytest.raises(DockerfileError, match="only one escape"):
        parse("# escape=\\\n# escape=`\nFROM scratch\n")


def test_exec_and_shell_forms() -> None:
    df = parse('FROM scratch\nCMD ["a", "b c"]\nENTRYPOINT echo hi\nRUN [not json\n'
               'SHELL ["/bin/bash", "-c"]\n')
    cmd, ep, run, shell = df.stages[0].instructions
    assert cmd.json and cmd.args == ("a", "b c")
    assert not ep.json and ep.args == ("echo hi",)
    assert not run.json and run.args == ("[not json",)
    assert shell.args == ("/bin/bash", "-c")


def test_shell_requires_json() -> None:
    with pytest.raises(DockerfileError, match="Dockerfile:2: SHELL: requires the arguments"):
        parse("FROM scratch\nSHELL /bin/bash -c\n")


def test_from_forms_and_stages() -> None:
    df = parse("ARG V=1\nFROM --platform=linux/amd64 busybox:$V AS Build\nRUN x\n"
               "FROM build\nCOPY --from=build /a /b\nFROM scratch\n")
    assert [a.pairs for a in df.global_args] == [(("V", "1"),)]
    assert [s.name for s in df.stages] == ["build", None, None]
    assert df.stages[0].platform == "linux/amd64"
    assert df.stages[0].base == "busybox:$V"
    assert df.stages[1].base == "build"
    assert df.stage("build").index == 0
    assert df.stage("2").base == "scratch"
    assert df.instruction_count == 5


def test_instruction_before_from_is_an_error() -> None:
    with pytest.raises(DockerfileError, match="Dockerfile:1: RUN: no FROM"):
        parse("RUN echo\nFROM scratch\n")


def test_duplicate_stage_name() -> None:
    with pytest.raises(DockerfileError, match="Dockerfile:2: FROM: duplicate name"):
        parse("FROM scratch AS a\nFROM scratch AS A\n")


def test_copy_flags_and_args() -> None:
    df = parse('FROM scratch\nCOPY --chown=app:app --from=0 a b* /dst/\n'
               'ADD ["x y", "/z"]\nCOPY --link a b\n')
    copy, add, link = df.stages[0].instructions
    assert copy.flags == {"chown": "app:app", "from": "0"}
    assert copy.args == ("a", "b*", "/dst/")
    assert add.json and add.args == ("x y", "/z")
    assert link.flag("link") == "true"


def test_unknown_flag_and_missing_value_are_located() -> None:
    with pytest.raises(DockerfileError, match="Dockerfile:3: COPY: unknown flag: --bogus"):
        parse("FROM scratch\n\nCOPY --bogus=1 a b\n", "Dockerfile")
    with pytest.raises(DockerfileError, match="missing a value on flag: --chown"):
        parse("FROM scratch\nCOPY --chown a b\n")
    with pytest.raises(DockerfileError, match="ADD: unknown flag: --from"):
        parse("FROM scratch\nADD --from=x a b\n")


def test_copy_needs_two_arguments() -> None:
    with pytest.raises(DockerfileError, match="Dockerfile:2: COPY: requires at least two"):
        parse("FROM scratch\nCOPY onlyone\n")


def test_env_and_label_forms() -> None:
    df = parse('FROM scratch\nENV A=1 B="x y" C=a\\ b\nENV LEGACY some value here\n'
               'LABEL "com.x"="y z" v=1\n')
    env, legacy, label = df.stages[0].instructions
    assert env.pairs == (("A", "1"), ("B", '"x y"'), ("C", "a\\ b"))
    assert legacy.pairs == (("LEGACY", "some value here"),)
    assert label.pairs == (('"com.x"', '"y z"'), ("v", "1"))


def test_env_without_value_is_an_error() -> None:
    with pytest.raises(DockerfileError, match="Dockerfile:2: ENV"):
        parse("FROM scratch\nENV ONLYKEY\n")


def test_arg_with_and_without_default() -> None:
    df = parse("FROM scratch\nARG A B=2 C=\n")
    assert df.stages[0].instructions[0].pairs == (("A", None), ("B", "2"), ("C", ""))


def test_healthcheck_forms() -> None:
    df = parse('FROM scratch\nHEALTHCHECK --interval=5s --retries=3 CMD curl -f http://x/\n'
               'HEALTHCHECK CMD ["true"]\nHEALTHCHECK NONE\n')
    shell, exec_, none = df.stages[0].instructions
    assert shell.args == ("CMD-SHELL", "curl -f http://x/")
    assert shell.flags == {"interval": "5s", "retries": "3"}
    assert exec_.args == ("CMD", "true")
    assert none.args == ("NONE",)


def test_onbuild_and_unknown_instructions_are_refused_clearly() -> None:
    with pytest.raises(DockerfileError, match="Dockerfile:2: ONBUILD: ONBUILD is not supported"):
        parse("FROM scratch\nONBUILD RUN x\n")
    with pytest.raises(DockerfileError, match="Dockerfile:2: FOO: unknown instruction"):
        parse("FROM scratch\nfoo bar\n")


def test_keywords_are_case_insensitive() -> None:
    df = parse("from scratch\nworkdir /a\n")
    assert df.stages[0].instructions[0].keyword == "WORKDIR"


def test_heredoc_for_run_and_copy() -> None:
    df = parse("FROM scratch\nRUN <<EOF\necho 1\necho 2\nEOF\nCOPY <<-END /f\n\thello\n\tEND\n"
               "RUN echo after\n")
    run, copy, after = df.stages[0].instructions
    assert run.heredocs[0].content == "echo 1\necho 2\n"
    assert copy.heredocs[0].content == "hello\n"
    assert copy.args == ("<<-END", "/f")
    assert after.line == 9


def test_unterminated_heredoc() -> None:
    with pytest.raises(DockerfileError, match="unterminated heredoc"):
        parse("FROM scratch\nRUN <<EOF\necho\n")


def test_no_from_at_all() -> None:
    with pytest.raises(DockerfileError, match="no FROM"):
        parse("ARG X=1\n# only a comment\n", "Containerfile")
