"""The builder: Dockerfiles to layered images.

Pure parts (no IO, unit-tested without a daemon):

- `dockerfile`   text → `Dockerfile` (stages of `Instruction`s), Docker's syntax and errors
- `shell_words`  Docker's variable substitution and word splitting
- `dockerignore` .dockerignore matching and the context walk the docker CLI does
- `plan`         stages to build, ARG scoping, substituted steps, config changes, history
                 text and cache keys, driven stage by stage by the executor
"""
