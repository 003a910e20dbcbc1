# tessera_add_plugin(NAME <name> MANIFEST <file.yaml> SOURCES <src...> [LIBS <libs...>])
#
# Builds an unversioned shared module "tessera-<name>.so" that exports exactly
# one symbol (tessera_plugin_entry), places it and its manifest where the
# build tree mirrors the install tree, and installs both.
set(TESSERA_PLUGIN_VERSION_SCRIPT "${CMAKE_CURRENT_LIST_DIR}/plugin.map")

function(tessera_add_plugin)
  cmake_parse_arguments(P "" "NAME;MANIFEST;COMPONENT" "SOURCES;LIBS" ${ARGN})
  set(tgt tessera-plugin-${P_NAME})
  add_library(${tgt} MODULE ${P_SOURCES})
  set_target_properties(${tgt} PROPERTIES
    PREFIX "" OUTPUT_NAME "tessera-${P_NAME}"
    C_VISIBILITY_PRESET hidden
    LIBRARY_OUTPUT_DIRECTORY "${TESSERA_BUILD_PLUGIN_DIR}")
  target_include_directories(${tgt} PRIVATE "${PROJECT_SOURCE_DIR}/include")
  target_link_options(${tgt} PRIVATE
    "-Wl,--version-script=${TESSERA_PLUGIN_VERSION_SCRIPT}" "-Wl,--no-undefined")
  target_link_libraries(${tgt} PRIVATE ${P_LIBS})
  if(NOT P_COMPONENT)
    set(P_COMPONENT plugin-${P_NAME})
  endif()
  install(TARGETS ${tgt} LIBRARY DESTINATION "${TESSERA_PLUGIN_INSTALL_DIR}" COMPONENT ${P_COMPONENT})
  if(P_MANIFEST)
    get_filename_component(mname "${P_MANIFEST}" NAME)
    configure_file("${P_MANIFEST}" "${TESSERA_BUILD_MANIFEST_DIR}/${mname}" COPYONLY)
    install(FILES "${P_MANIFEST}" DESTINATION "${TESSERA_MANIFEST_INSTALL_DIR}" COMPONENT ${P_COMPONENT})
  endif()
endfunction()

# tessera_optional(<VAR> <name> <found> <why-not>)
# AUTO: build if found, else say why it was skipped.  ON: fail if not found.
function(tessera_optional var name found why)
  if("${${var}}" STREQUAL "OFF")
    set(TESSERA_OPTIONAL_SUMMARY "${TESSERA_OPTIONAL_SUMMARY} ${name}=off" PARENT_SCOPE)
    set(${var}_ENABLED OFF PARENT_SCOPE)
  elseif(found)
    set(TESSERA_OPTIONAL_SUMMARY "${TESSERA_OPTIONAL_SUMMARY} ${name}=built" PARENT_SCOPE)
    set(${var}_ENABLED ON PARENT_SCOPE)
  elseif("${${var}}" STREQUAL "ON")
    message(FATAL_ERROR "${var}=ON but the ${name} plugin cannot be built: ${why}")
  else()
    message(STATUS "tessera: skipping the ${name} plugin: ${why}")
    set(TESSERA_OPTIONAL_SUMMARY "${TESSERA_OPTIONAL_SUMMARY} ${name}=skipped" PARENT_SCOPE)
    set(${var}_ENABLED OFF PARENT_SCOPE)
  endif()
endfunction()
