include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

install(TARGETS convgrad EXPORT convgradTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(DIRECTORY include/convgrad DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(EXPORT convgradTargets NAMESPACE convgrad::
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/convgrad)
configure_package_config_file(cmake/convgradConfig.cmake.in
  ${PROJECT_BINARY_DIR}/convgradConfig.cmake
  INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/convgrad)
write_basic_package_version_file(${PROJECT_BINARY_DIR}/convgradConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/convgradConfig.cmake
  ${PROJECT_BINARY_DIR}/convgradConfigVersion.cmake
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/convgrad)
