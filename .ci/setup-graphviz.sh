# Sourced by .ci/run: Graphviz, so that the diagram test renders every
# workflow's DOT with `dot` (tests/graph.rs, dot_renders_with_graphviz).
if ! command -v dot >/dev/null 2>&1; then
  apt-get -o DPkg::Lock::Timeout=300 update -qq
  apt-get -o DPkg::Lock::Timeout=300 install -y -qq graphviz >/dev/null
fi
dot -V
