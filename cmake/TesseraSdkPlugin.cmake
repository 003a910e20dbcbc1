# TesseraSdkPlugin.cmake - build a tessera plugin against the installed SDK
# (installed with the CMake package; included by TesseraConfig.cmake).
#
# tessera_sdk_add_plugin(NAME <name> SOURCES <src...> [MANIFEST <file.yaml>]
#                        [LIBS <libs...>] [COMPONENT <c>] [NO_INSTALL])
#
# Builds the module "tessera-<name>.so" (no "lib" prefix, no soname), with
# hidden visibility and a version script so that it exports exactly one
# symbol, tessera_plugin_entry; links Tessera::sdk (headers only: a plugin
# never links libtessera).  Unless NO_INSTALL, installs the module into
# ${CMAKE_INSTALL_LIBDIR}/tessera-1/plugins and the manifest into
# ${CMAKE_INSTALL_DATADIR}/tessera/plugins.d of *your* prefix, which is what
# a distribution package of the plugin wants when the prefix is /usr.
set(_TESSERA_SDK_DIR "${CMAKE_CURRENT_LIST_DIR}")

function(tessera_sdk_add_plugin)
  cmake_parse_arguments(P "NO_INSTALL" "NAME;MANIFEST;COMPONENT" "SOURCES;LIBS" ${ARGN})
  if(NOT P_NAME OR NOT P_SOURCES)
    message(FATAL_ERROR "tessera_sdk_add_plugin: NAME and SOURCES are required")
  endif()
  include(GNUInstallDirs)
  set(tgt tessera-plugin-${P_NAME})
  add_library(${tgt} MODULE ${P_SOURCES})
  set_target_properties(${tgt} PROPERTIES PREFIX "" OUTPUT_NAME "tessera-${P_NAME}"
    C_VISIBILITY_PRESET hidden CXX_VISIBILITY_PRESET hidden VISIBILITY_INLINES_HIDDEN ON)
  target_link_libraries(${tgt} PRIVATE Tessera::sdk ${P_LIBS})
  target_link_options(${tgt} PRIVATE
    "-Wl,--version-script=${_TESSERA_SDK_DIR}/plugin.map" "-Wl,--no-undefined")
  if(NOT P_COMPONENT)
    set(P_COMPONENT plugin-${P_NAME})
  endif()
  if(NOT P_NO_INSTALL)
    install(TARGETS ${tgt} LIBRARY DESTINATION "${CMAKE_INSTALL_LIBDIR}/tessera-1/plugins"
      COMPONENT ${P_COMPONENT})
    if(P_MANIFEST)
      install(FILES "${P_MANIFEST}" DESTINATION "${CMAKE_INSTALL_DATADIR}/tessera/plugins.d"
        COMPONENT ${P_COMPONENT})
    endif()
  endif()
endfunction()
