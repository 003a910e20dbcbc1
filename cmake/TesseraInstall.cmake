# cmake/TesseraInstall.cmake - what `cmake --install` writes, by component:
#   runtime  libtessera.so.0 (+ its real file)          -> libtessera0
#   dev      headers, libtessera.so namelink, tessera.pc,
#            CMake package Tessera (targets Tessera::tessera, Tessera::sdk)
#                                                          -> libtessera-dev
#   cli      bin/tessera, man pages (tools/, docs/)        -> tessera
#   plugin-<name>  one plugin module + its manifest        -> tessera-plugin-<name>
# Everything goes below CMAKE_INSTALL_PREFIX (and DESTDIR): no absolute
# destinations, and tessera.pc is written at install time so that
# `cmake --install build --prefix P` gets P in it.
include(CMakePackageConfigHelpers)

set(TESSERA_CMAKE_INSTALL_DIR "${CMAKE_INSTALL_LIBDIR}/cmake/Tessera")

# Headers only, for plugin authors (plugins never link libtessera).
add_library(tessera-sdk INTERFACE)
set_target_properties(tessera-sdk PROPERTIES EXPORT_NAME sdk)
target_include_directories(tessera-sdk INTERFACE
  "$<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}/include>"
  "$<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>")
add_library(Tessera::sdk ALIAS tessera-sdk)
set_target_properties(tessera PROPERTIES EXPORT_NAME tessera)
add_library(Tessera::tessera ALIAS tessera)

install(TARGETS tessera EXPORT TesseraTargets
  LIBRARY DESTINATION "${CMAKE_INSTALL_LIBDIR}" COMPONENT runtime NAMELINK_COMPONENT dev)
install(TARGETS tessera-sdk EXPORT TesseraTargets)
install(DIRECTORY "${PROJECT_SOURCE_DIR}/include/tessera"
  DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}" COMPONENT dev FILES_MATCHING PATTERN "*.h")

# CMake package: TesseraConfig.cmake, its version file, the targets, and the
# helper that builds a plugin exactly as the in-tree ones are built.
install(EXPORT TesseraTargets NAMESPACE Tessera:: FILE TesseraTargets.cmake
  DESTINATION "${TESSERA_CMAKE_INSTALL_DIR}" COMPONENT dev)
configure_package_config_file("${PROJECT_SOURCE_DIR}/cmake/TesseraConfig.cmake.in"
  "${PROJECT_BINARY_DIR}/cmake/TesseraConfig.cmake"
  INSTALL_DESTINATION "${TESSERA_CMAKE_INSTALL_DIR}"
  PATH_VARS TESSERA_PLUGIN_INSTALL_DIR TESSERA_MANIFEST_INSTALL_DIR CMAKE_INSTALL_INCLUDEDIR)
# The plugin ABI major is the compatibility line: 1.x plugins, 0.x library.
write_basic_package_version_file("${PROJECT_BINARY_DIR}/cmake/TesseraConfigVersion.cmake"
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)
install(FILES
  "${PROJECT_BINARY_DIR}/cmake/TesseraConfig.cmake"
  "${PROJECT_BINARY_DIR}/cmake/TesseraConfigVersion.cmake"
  "${PROJECT_SOURCE_DIR}/cmake/TesseraSdkPlugin.cmake"
  "${PROJECT_SOURCE_DIR}/cmake/plugin.map"
  DESTINATION "${TESSERA_CMAKE_INSTALL_DIR}" COMPONENT dev)

# pkg-config: configured when installing, with the prefix actually used.
set(_tsr_pc_in "${PROJECT_SOURCE_DIR}/tessera.pc.in")
set(_tsr_pc_out "${PROJECT_BINARY_DIR}/tessera-install.pc")
install(CODE "
  set(_p \"\${CMAKE_INSTALL_PREFIX}\")
  foreach(_d LIBDIR:${CMAKE_INSTALL_LIBDIR} INCLUDEDIR:${CMAKE_INSTALL_INCLUDEDIR} DATADIR:${CMAKE_INSTALL_DATADIR})
    string(REPLACE \":\" \";\" _kv \"\${_d}\")
    list(GET _kv 0 _k)
    list(GET _kv 1 _v)
    if(IS_ABSOLUTE \"\${_v}\")
      set(TSR_PC_\${_k} \"\${_v}\")
    else()
      set(TSR_PC_\${_k} \"\\\${prefix}/\${_v}\")
    endif()
  endforeach()
  set(TSR_PC_PREFIX \"\${_p}\")
  set(TSR_PC_VERSION \"${PROJECT_VERSION}\")
  set(TSR_PC_DESCRIPTION \"${PROJECT_DESCRIPTION}\")
  set(TSR_PC_PLUGIN_SUBDIR \"${TESSERA_PLUGIN_SUBDIR}\")
  configure_file(\"${_tsr_pc_in}\" \"${_tsr_pc_out}\" @ONLY)
  file(INSTALL DESTINATION \"\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_LIBDIR}/pkgconfig\"
       TYPE FILE RENAME tessera.pc FILES \"${_tsr_pc_out}\")
  " COMPONENT dev)
