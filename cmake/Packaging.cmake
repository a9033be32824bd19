# Packaging.cmake - man pages (help2man), the systemd units and example
# configs, and the `fulcrum` Debian package (CPack DEB). Included from the
# top-level CMakeLists.txt after the daemons' targets exist.
#
# One package, not one per daemon: the four daemons share the cluster key,
# /etc/fulcrum and the same libraries, a cache host runs two of them and a
# balancer host may run the monitor too, and the whole is under 1 MiB.
#
# `cmake --install` puts the binaries in bin/ and the man pages in
# share/man/man8. The units (lib/systemd/system, naming /usr/bin) and the
# examples (/etc/fulcrum) belong to the package alone: they are in the
# `deb` component, which a plain `cmake --install` leaves out.

set(FULCRUM_DAEMONS fulcrum-agent fulcrum-monitor fulcrum-balancer fulcrum-cache)
# Every program with a man page: the daemons and the admin API's client.
set(FULCRUM_PROGRAMS ${FULCRUM_DAEMONS} fulcrumctl)

# ---- man pages: --help and --version through help2man, plus man/NAME.h2m ---
find_program(HELP2MAN help2man)
if(HELP2MAN)
  set(fulcrum_man_pages)
  foreach(d IN LISTS FULCRUM_PROGRAMS)
    set(page ${PROJECT_BINARY_DIR}/man/${d}.8)
    add_custom_command(
      OUTPUT ${page}.gz
      COMMAND ${CMAKE_COMMAND} -E make_directory ${PROJECT_BINARY_DIR}/man
      COMMAND ${CMAKE_COMMAND} -E env ASAN_OPTIONS=detect_leaks=0
              ${HELP2MAN} --no-info --section 8 --manual "Fulcrum"
              --source "Fulcrum ${PROJECT_VERSION}"
              --include ${PROJECT_SOURCE_DIR}/man/${d}.h2m
              --output ${page} $<TARGET_FILE:${d}>
      COMMAND gzip -9nf ${page}
      DEPENDS ${d} ${PROJECT_SOURCE_DIR}/man/${d}.h2m
      COMMENT "help2man ${d}.8"
      VERBATIM)
    list(APPEND fulcrum_man_pages ${page}.gz)
  endforeach()
  add_custom_target(man ALL DEPENDS ${fulcrum_man_pages})
  # OPTIONAL: a build of the daemons' targets alone (ansible's source
  # install) has no man pages and must still install.
  install(FILES ${fulcrum_man_pages} DESTINATION ${CMAKE_INSTALL_MANDIR}/man8 OPTIONAL)
else()
  message(WARNING "help2man not found (scripts/deps.sh build): no man pages, no package")
endif()

# ---- what only the package ships --------------------------------------------
install(FILES packaging/systemd/fulcrum-agent.service packaging/systemd/fulcrum-cache.service
              packaging/systemd/fulcrum-balancer.service packaging/systemd/fulcrum-monitor.service
        DESTINATION lib/systemd/system COMPONENT deb EXCLUDE_FROM_ALL)
install(FILES packaging/examples/agent.conf.example packaging/examples/monitor.conf.example
              packaging/examples/balancer.conf.example packaging/examples/cache.conf.example
        DESTINATION /etc/fulcrum COMPONENT deb EXCLUDE_FROM_ALL)

# ---- CPack: one `fulcrum` .deb ----------------------------------------------
# cpack installs what is built and builds nothing: build the daemons and
# `man` first (tests/packaging/test_package.sh does). Without this, `make
# install` and cpack would build every test first.
set(CMAKE_SKIP_INSTALL_ALL_DEPENDENCY ON)
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME fulcrum)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "Fulcrum maintainers <fulcrum@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
    "metrics-weighted TCP load balancer for replicated HTTP cache nodes")
set(CPACK_PACKAGE_DESCRIPTION
    "Fulcrum is four daemons: fulcrum-agent reports a cache host's load, fulcrum-monitor probes the agents, fulcrum-balancer spreads TCP connections over the nodes by their weights, and fulcrum-cache is an HTTP/1.1 caching reverse proxy that replicates to its peers. Ships the daemons, their man pages, sandboxed systemd units (not enabled) and example configurations in /etc/fulcrum.")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS OFF)
# The default component plus the package-only one, in one package.
set(CPACK_COMPONENTS_ALL Unspecified deb)
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_COMPONENTS_GROUPING ALL_COMPONENTS_IN_ONE)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
# Files in /etc are conffiles (Debian policy 10.7.2): an upgrade keeps edits.
set(fulcrum_conffiles ${PROJECT_BINARY_DIR}/packaging/conffiles)
file(WRITE ${fulcrum_conffiles} "")
foreach(d agent monitor balancer cache)
  file(APPEND ${fulcrum_conffiles} "/etc/fulcrum/${d}.conf.example\n")
endforeach()
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA ${fulcrum_conffiles})
include(CPack)
