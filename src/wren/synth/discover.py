"""Finding what to break: the source files of a repository, their functions, and candidate mutations."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import libcst as cst
from libcst.metadata import CodeRange, MetadataWrapper, ParentNodeProvider, PositionProvider

from wren.repo_layout import SKIPPED_DIRS
from wren.synth.mutators import Edit, FunctionContext, Mutator


def is_test_file(relpath: str) -> bool:
    """Whether a repository path is test code (pytest's default naming, or inside a tests folder)."""
    path = PurePosixPath(relpath)
    name = path.name
    if name == "conftest.py" or name.startswith("test_") or name.endswith("_test.py") or name == "tests.py":
        return True
    return any(part in ("test", "tests", "testing") for part in path.parts[:-1])


def is_source_file(relpath: str) -> bool:
    """Whether a repository path is Python code that may be mutated (not tests, docs, build files)."""
    path = PurePosixPath(relpath)
    if path.suffix != ".py" or relpath in ("setup.py", "noxfile.py", "fabfile.py", "conftest.py"):
        return False
    for part in path.parts[:-1]:
        if part.startswith(".") or part in SKIPPED_DIRS or part.endswith(".egg-info"):
            return False
    return not is_test_file(relpath)


def source_files(root: Path, paths: Iterable[str] | None = None) -> list[str]:
    """Repository-relative POSIX paths of the Python files that may be mutated, sorted; from `paths`
    (e.g. a snapshot's file list) when given, else from walking `root`."""
    if paths is None:
        found = []
        for dirpath, dirnames, filenames in os.walk(root):
            rel_dir = Path(dirpath).relative_to(root)
            dirnames[:] = [d for d in dirnames if not d.startswith(".") and d not in SKIPPED_DIRS]
            found.extend((rel_dir / name).as_posix() for name in filenames)
        paths = found
    return sorted(p for p in paths if is_source_file(p))


try:  # private, but it is what Module.code_for_node uses; without it every edit regenerates the file
    from libcst._nodes.internal import CodegenState
except ImportError:  # pragma: no cover - depends on the libcst version
    CodegenState = None


@dataclass
class ParsedFile:
    """One source file, parsed once; candidates refer to its nodes."""

    path: str
    text: str
    module: cst.Module
    positions: Mapping[cst.CSTNode, CodeRange]
    parents: Mapping[cst.CSTNode, cst.CSTNode]
    line_starts: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.line_starts:
            # Only what the tokenizer counts as a line break (str.splitlines also splits on \f and more).
            self.line_starts = [0, *(m.end() for m in re.finditer(r"\r\n|\r|\n", self.text))]

    def lines_of(self, node: cst.CSTNode) -> tuple[int, int]:
        pos = self.positions[node]
        return pos.start.line, pos.end.line

    def apply(self, edit: Edit) -> str:
        """The file's text with `edit` applied."""
        spliced = self._splice(edit)
        if spliced is not None:
            return spliced
        module = self.module
        if edit.replacement is None:
            return module.deep_remove(edit.target).code
        return module.deep_replace(edit.target, edit.replacement).code

    def _indent_tokens(self, node: cst.CSTNode) -> list[str]:
        tokens: list[str] = []
        parent = self.parents.get(node)
        while parent is not None:
            if isinstance(parent, cst.IndentedBlock):
                tokens.append(parent.indent if parent.indent is not None else self.module.default_indent)
            parent = self.parents.get(parent)
        return tokens[::-1]

    def _generate(self, node: cst.CSTNode, indent_tokens: list[str], *, is_elif: bool = False) -> str:
        state = CodegenState(
            default_indent=self.module.default_indent,
            default_newline=self.module.default_newline,
            indent_tokens=list(indent_tokens),
        )
        if is_elif:
            node._codegen(state, is_elif=True)
        else:
            node._codegen(state)
        return "".join(state.tokens)

    def _splice(self, edit: Edit) -> str | None:
        """Regenerate only the edited node and splice it into the text; None when that cannot be done
        safely (the regenerated original must reproduce the text it stands for)."""
        if CodegenState is None:
            return None
        target, replacement = edit.target, edit.replacement
        tokens = self._indent_tokens(target)
        pos = self.positions[target]
        try:
            if isinstance(target, (cst.SimpleStatementLine, cst.BaseCompoundStatement)):
                start = self.line_starts[pos.start.line - 1]
                parent = self.parents.get(target)
                is_elif = isinstance(parent, cst.If) and parent.orelse is target
                original = self._generate(target.with_changes(leading_lines=()), tokens, is_elif=is_elif)
                new = (
                    ""
                    if replacement is None
                    else self._generate(replacement.with_changes(leading_lines=()), tokens, is_elif=is_elif)
                )
            else:
                if replacement is None:
                    return None
                start = self.line_starts[pos.start.line - 1] + pos.start.column
                lpar = getattr(target, "lpar", None)
                if lpar:
                    target = target.with_changes(lpar=(), rpar=())
                    if getattr(replacement, "lpar", None) == lpar:
                        replacement = replacement.with_changes(lpar=(), rpar=())
                original = self._generate(target, tokens)
                new = self._generate(replacement, tokens)
        except (IndexError, TypeError, ValueError, AttributeError):
            return None
        if not self.text.startswith(original, start):
            return None
        return self.text[:start] + new + self.text[start + len(original) :]


def parse_file(root: Path, relpath: str) -> ParsedFile | None:
    """Parse a file with libcst; None if it is not valid Python for the parser or not UTF-8."""
    try:
        # newline="" keeps the file's own line endings, so a patch touches only the mutated lines.
        with open(root / relpath, encoding="utf-8", newline="") as f:
            text = f.read()
        # The module is ours alone, so the wrapper need not copy it; both providers share one pass.
        wrapper = MetadataWrapper(cst.parse_module(text), unsafe_skip_copy=True)
        metadata = wrapper.resolve_many([PositionProvider, ParentNodeProvider])
        positions, parents = metadata[PositionProvider], metadata[ParentNodeProvider]
    except (OSError, UnicodeDecodeError, cst.ParserSyntaxError, RecursionError):
        return None
    return ParsedFile(relpath, text, wrapper.module, positions, parents)


@dataclass
class Candidate:
    """One proposed mutation: where it is, what it does, and how to produce the mutated file."""

    path: str
    function: str
    mutator: str
    start_line: int
    end_line: int
    replacement: str
    """Code of the replacement node ("" for a removal); with the position it identifies the mutation."""
    file: ParsedFile = field(repr=False)
    edit: Edit = field(repr=False)

    @property
    def key(self) -> str:
        pos = self.file.positions[self.edit.target]
        text = f"{self.path}:{pos.start.line}:{pos.start.column}:{pos.end.line}:{pos.end.column}:{self.replacement}"
        return hashlib.sha1(text.encode()).hexdigest()

    @property
    def id(self) -> str:
        """Stable short id from the file, place and replacement (not from the mutator that found it)."""
        return self.key[:10]

    def mutated_text(self) -> str:
        return self.file.apply(self.edit)


class _FunctionFinder(cst.CSTVisitor):
    """Every function and method of a module (nested ones too), with a dotted qualified name."""

    def __init__(self) -> None:
        self.scope: list[str] = []
        self.functions: list[tuple[str, cst.FunctionDef]] = []

    def visit_ClassDef(self, node: cst.ClassDef) -> bool:
        self.scope.append(node.name.value)
        return True

    def leave_ClassDef(self, original_node: cst.ClassDef) -> None:
        self.scope.pop()

    def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
        self.scope.append(node.name.value)
        self.functions.append((".".join(self.scope), node))
        return True

    def leave_FunctionDef(self, original_node: cst.FunctionDef) -> None:
        self.scope.pop()


class _BodyWalker(cst.CSTVisitor):
    """Visits a function body in source order, without entering nested functions and classes."""

    def __init__(self, on_node) -> None:
        self.on_node = on_node
        self.stack: list[cst.CSTNode] = []

    def on_visit(self, node: cst.CSTNode) -> bool:
        if isinstance(node, (cst.FunctionDef, cst.ClassDef)):
            return False
        self.on_node(node, self.stack[-1] if self.stack else None)
        self.stack.append(node)
        return True

    def on_leave(self, original_node: cst.CSTNode) -> None:
        if self.stack and self.stack[-1] is original_node:
            self.stack.pop()


def _binding_names(target: cst.CSTNode) -> Iterator[cst.Name]:
    if isinstance(target, cst.Name):
        yield target
    elif isinstance(target, (cst.Tuple, cst.List)):
        for element in target.elements:
            yield from _binding_names(element.value)
    elif isinstance(target, cst.StarredElement):
        yield from _binding_names(target.value)


def _function_context(parsed: ParsedFile, func: cst.FunctionDef) -> FunctionContext:
    def_line = parsed.positions[func].start.line
    line_of: dict[int, int] = {}
    first: dict[str, int] = {}
    params = func.params
    for param in [*params.posonly_params, *params.params, *params.kwonly_params]:
        first.setdefault(param.name.value, def_line)
    for star in (params.star_arg, params.star_kwarg):
        if isinstance(star, cst.Param):
            first.setdefault(star.name.value, def_line)

    def record(node: cst.CSTNode, parent: cst.CSTNode | None) -> None:
        line = parsed.positions[node].start.line
        line_of[id(node)] = line
        targets: list[cst.CSTNode] = []
        if isinstance(node, (cst.AssignTarget, cst.AnnAssign, cst.AugAssign, cst.For, cst.NamedExpr)):
            targets = [node.target]
        elif isinstance(node, cst.AsName):
            targets = [node.name]
        for target in targets:
            for name in _binding_names(target):
                first.setdefault(name.value, line)

    func.body.visit(_BodyWalker(record))
    return FunctionContext(function=func, line_of=line_of, first_binding=first)


def file_candidates(parsed: ParsedFile, mutators: Sequence[Mutator]) -> list[Candidate]:
    """All candidate mutations in the functions of one file, in source order, mutator by mutator."""
    finder = _FunctionFinder()
    parsed.module.visit(finder)
    out: list[Candidate] = []
    for qualname, func in finder.functions:
        ctx = _function_context(parsed, func)
        nodes: list[tuple[cst.CSTNode, cst.CSTNode | None]] = []
        func.body.visit(_BodyWalker(lambda node, parent, into=nodes: into.append((node, parent))))
        for mutator in mutators:
            for node, parent in nodes:
                for edit in mutator.edits(node, parent, ctx):
                    start, end = parsed.lines_of(edit.target)
                    replacement = (
                        "" if edit.replacement is None else parsed.module.code_for_node(edit.replacement)
                    )
                    if replacement == parsed.module.code_for_node(edit.target):
                        continue
                    out.append(
                        Candidate(parsed.path, qualname, mutator.name, start, end, replacement, parsed, edit)
                    )
    return out


def repo_candidates(
    root: Path, mutators: Sequence[Mutator], files: Sequence[str] | None = None
) -> list[Candidate]:
    """Candidates over all source files; a mutation found by two mutators is kept once (the first)."""
    seen: set[str] = set()
    out: list[Candidate] = []
    for relpath in files if files is not None else source_files(root):
        parsed = parse_file(root, relpath)
        if parsed is None:
            continue
        for candidate in file_candidates(parsed, mutators):
            if candidate.key not in seen:
                seen.add(candidate.key)
                out.append(candidate)
    return out
