# unit.test_graph_alloc counts the core's allocations during decode steps by
# wrapping malloc/calloc/realloc at link time (tests/unit/test_graph_alloc.c).
target_link_options(test_graph_alloc PRIVATE "LINKER:--wrap=malloc,--wrap=calloc,--wrap=realloc")
