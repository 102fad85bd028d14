"""The builder: Dockerfiles to layered images, as Docker's classic builder makes them.

Pure parts (no IO, unit-tested without a daemon):

- `dockerfile`   text → `Dockerfile` (stages of `Instruction`s), Docker's syntax and errors;
                 its line scanner (directives, continuations, heredocs) is `_dockerfile_lines`
- `shell_words`  Docker's variable substitution and word splitting
- `dockerignore` .dockerignore matching and the context walk the docker CLI does
- `plan`         stages to build, ARG scoping, substituted steps, config changes, history
                 text and cache keys, driven stage by stage by the executor; the
                 per-instruction evaluation and the action types are `_dispatch`

Parts that do the work (driven by `services/builds.BuildService`, one build at a time each):

- `context`      the context tar extracted safely while its files are hashed; .dockerignore
                 applied on the daemon side; sources (paths, globs, symlinks) found in a tree
- `executor`     the step loop: cache lookups, Docker's output, one image per step
- `steps`        COPY/ADD sources and copies, WORKDIR, `RUN --mount`
- `copy`         the copy itself: destinations, --chown/--chmod, ADD archives and URLs
- `runner`       sandboxes (overlay of the parent image) and RUN in a runtime container
- `commit`       an upper dir → one layer (blob + snapshot), step configs → images
- `cache`        the build cache table (cache key → image), kept across restarts
"""
