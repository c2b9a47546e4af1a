# install(EXPORT) + package config so that find_package(qlm) works for installed copies.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

install(TARGETS qlm EXPORT qlm-targets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(DIRECTORY include/qlm DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(EXPORT qlm-targets NAMESPACE qlm:: DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/qlm)
configure_package_config_file(cmake/qlm-config.cmake.in
  ${CMAKE_CURRENT_BINARY_DIR}/qlm-config.cmake
  INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/qlm)
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/qlm-config-version.cmake
  COMPATIBILITY SameMajorVersion)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/qlm-config.cmake
  ${CMAKE_CURRENT_BINARY_DIR}/qlm-config-version.cmake
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/qlm)
