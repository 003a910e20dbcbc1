# Third-party plugin proof: install tessera to a temporary prefix, build
# examples/hello-plugin out of tree against it (CMake package and plain cc +
# pkg-config), list it with the installed CLI, and run its kernels through
# the registry.  Needs the whole build (it runs `cmake --install`).
add_executable(tessera-use-plugin "${CMAKE_CURRENT_LIST_DIR}/../plugins/use_plugin.c")
target_link_libraries(tessera-use-plugin PRIVATE tessera-core m)
add_test(NAME plugins.out_of_tree
  COMMAND bash "${CMAKE_CURRENT_LIST_DIR}/../plugins/out_of_tree.sh"
  WORKING_DIRECTORY "${PROJECT_SOURCE_DIR}")
set_tests_properties(plugins.out_of_tree PROPERTIES TIMEOUT 600 RUN_SERIAL ON ENVIRONMENT
  "TESSERA_BUILD_DIR=${PROJECT_BINARY_DIR};TESSERA_SOURCE_DIR=${PROJECT_SOURCE_DIR};TESSERA_USE_PLUGIN=$<TARGET_FILE:tessera-use-plugin>;CMAKE_COMMAND=${CMAKE_COMMAND};CC=${CMAKE_C_COMPILER};TESSERA_LIBDIR=${CMAKE_INSTALL_LIBDIR}")
