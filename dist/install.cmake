# What `cmake --install` puts where: headers, libdeconv.a and libdeconv.so, the deconv
# binary and the assets it reads, a man page per command and bash completion (both made
# from the built CLI's --help text), deconv.pc and the CMake package (find_package(deconv)).
# The OpenCL kernels are compiled into the library, so nothing else is needed at run time.
include(CMakePackageConfigHelpers)

# The command names, from the CLI's own list.
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS
             ${CMAKE_SOURCE_DIR}/host/cli/commands.def)
file(STRINGS ${CMAKE_SOURCE_DIR}/host/cli/commands.def command_lines REGEX "^X\\(")
set(DECONV_COMMANDS "")
foreach(line IN LISTS command_lines)
  string(REGEX REPLACE "^X\\(([a-z0-9_]+),.*" "\\1" command "${line}")
  list(APPEND DECONV_COMMANDS ${command})
endforeach()

set(DECONV_MAN_DIR ${CMAKE_BINARY_DIR}/man)
set(DECONV_MAN_PAGES ${DECONV_MAN_DIR}/deconv.1)
foreach(command IN LISTS DECONV_COMMANDS)
  list(APPEND DECONV_MAN_PAGES ${DECONV_MAN_DIR}/deconv-${command}.1)
endforeach()
# From the binary that gets installed: its help names the installed assets' paths.
add_custom_command(
  OUTPUT ${DECONV_MAN_PAGES}
  COMMAND sh ${CMAKE_SOURCE_DIR}/dist/gen_man.sh $<TARGET_FILE:deconv_cli_installed>
          ${DECONV_MAN_DIR} ${PROJECT_VERSION} ${CMAKE_INSTALL_FULL_DATADIR}/deconv
          ${DECONV_COMMANDS}
  DEPENDS deconv_cli_installed ${CMAKE_SOURCE_DIR}/dist/gen_man.sh
  COMMENT "Man pages from each command's --help")
set(DECONV_COMPLETION ${CMAKE_BINARY_DIR}/deconv.bash-completion)
add_custom_command(
  OUTPUT ${DECONV_COMPLETION}
  COMMAND sh ${CMAKE_SOURCE_DIR}/dist/gen_completion.sh $<TARGET_FILE:deconv_cli_installed>
          ${DECONV_COMPLETION} ${DECONV_COMMANDS}
  DEPENDS deconv_cli_installed ${CMAKE_SOURCE_DIR}/dist/gen_completion.sh
  COMMENT "Bash completion from each command's --help")
add_custom_target(deconv_docs ALL DEPENDS ${DECONV_MAN_PAGES} ${DECONV_COMPLETION})

install(TARGETS deconv_shared EXPORT deconvTargets
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(TARGETS deconv EXPORT deconvStaticTargets ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(TARGETS deconv_cli_installed RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(DIRECTORY ${CMAKE_SOURCE_DIR}/include/deconv DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(FILES ${DECONV_MAN_PAGES} DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)
install(FILES ${DECONV_COMPLETION} RENAME deconv
        DESTINATION ${CMAKE_INSTALL_DATADIR}/bash-completion/completions)
# What the installed binary reads (DECONV_ASSETS_DIR of deconv_cli_installed).
install(DIRECTORY ${CMAKE_SOURCE_DIR}/assets/guns DESTINATION ${DECONV_DATADIR})
install(FILES ${CMAKE_SOURCE_DIR}/assets/fm32_classifier.safetensors
              ${CMAKE_SOURCE_DIR}/assets/fm32_classifier.safetensors.sha256
              ${CMAKE_SOURCE_DIR}/assets/README.md
        DESTINATION ${DECONV_DATADIR})

# pkg-config: libdeconv.so carries its dependencies; a static link needs
# `pkg-config --static`, which adds them.
set(DECONV_PC_REQUIRES_PRIVATE "openblas zlib libcjson fftw3f")
set(DECONV_CMAKE_PKG_DEPENDENCIES OPENBLAS=openblas ZLIB=zlib CJSON=libcjson FFTW3F=fftw3f)
if(DECONV_OPENCL)
  string(APPEND DECONV_PC_REQUIRES_PRIVATE " OpenCL clblast")
  list(APPEND DECONV_CMAKE_PKG_DEPENDENCIES OPENCL=OpenCL CLBLAST=clblast)
endif()
if(DECONV_HAVE_MPI)
  string(APPEND DECONV_PC_REQUIRES_PRIVATE " ompi-c")
endif()
set(DECONV_PC_LIBS_PRIVATE "")
foreach(lib IN LISTS OpenMP_C_LIB_NAMES)
  string(APPEND DECONV_PC_LIBS_PRIVATE "-l${lib} ")
endforeach()
string(APPEND DECONV_PC_LIBS_PRIVATE "-lm")
set(DECONV_PC_DIR ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
file(RELATIVE_PATH DECONV_PC_PREFIX_FROM_PCDIR ${CMAKE_INSTALL_PREFIX}/${DECONV_PC_DIR}
     ${CMAKE_INSTALL_PREFIX})
string(REGEX REPLACE "/$" "" DECONV_PC_PREFIX_FROM_PCDIR "${DECONV_PC_PREFIX_FROM_PCDIR}")
configure_file(${CMAKE_SOURCE_DIR}/dist/deconv.pc.in ${CMAKE_BINARY_DIR}/deconv.pc @ONLY)
install(FILES ${CMAKE_BINARY_DIR}/deconv.pc DESTINATION ${DECONV_PC_DIR})

set(DECONV_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/deconv)
install(EXPORT deconvTargets NAMESPACE deconv:: DESTINATION ${DECONV_CMAKE_DIR})
install(EXPORT deconvStaticTargets NAMESPACE deconv:: DESTINATION ${DECONV_CMAKE_DIR})
configure_package_config_file(${CMAKE_SOURCE_DIR}/dist/deconvConfig.cmake.in
                              ${CMAKE_BINARY_DIR}/deconvConfig.cmake
                              INSTALL_DESTINATION ${DECONV_CMAKE_DIR})
# Before 1.0 a minor release may change the API: only the same major.minor is compatible.
write_basic_package_version_file(${CMAKE_BINARY_DIR}/deconvConfigVersion.cmake
                                 VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_BINARY_DIR}/deconvConfig.cmake ${CMAKE_BINARY_DIR}/deconvConfigVersion.cmake
        DESTINATION ${DECONV_CMAKE_DIR})
