# What `cmake --install` puts where, and how `cpack -G DEB` packs it.
# Paths are for the package's /usr prefix; /etc is absolute (GNUInstallDirs would give
# <prefix>/etc). The binary's own rule is in agent/CMakeLists.txt (DESTINATION bin).
include(GNUInstallDirs)

set(_deploy ${PROJECT_SOURCE_DIR}/deploy)
set(_docdir ${CMAKE_INSTALL_DATADIR}/doc/${PROJECT_NAME})
set(_datadir ${CMAKE_INSTALL_DATADIR}/${PROJECT_NAME})

install(FILES ${_deploy}/systemd/zastava-agent.service DESTINATION lib/systemd/system)
install(FILES ${_deploy}/systemd/zastava-agent.sysusers DESTINATION lib/sysusers.d
        RENAME zastava-agent.conf)
install(FILES ${_deploy}/systemd/zastava-agent.tmpfiles DESTINATION lib/tmpfiles.d
        RENAME zastava-agent.conf)
# Conffiles (deploy/debian/conffiles). agent.env is 0644 in the archive and holds only comments;
# postinst makes it 0640 root:zastava-agent inside the 0750 /etc/zastava-agent.
install(FILES ${_deploy}/systemd/agent.env DESTINATION /etc/zastava-agent)
install(FILES ${_deploy}/apparmor/usr.bin.zastava-agent DESTINATION /etc/apparmor.d)
# SELinux policy sources only: a .pp is built on the host against its policy (operations.md).
install(FILES ${_deploy}/selinux/zastava_agent.te ${_deploy}/selinux/zastava_agent.fc
              ${_deploy}/selinux/zastava_agent.if
        DESTINATION ${_datadir}/selinux)
install(FILES ${PROJECT_SOURCE_DIR}/dashboards/zastava-agent.rules.yml
              ${PROJECT_SOURCE_DIR}/dashboards/zastava-agent.rules.test.yml
              ${PROJECT_SOURCE_DIR}/dashboards/zastava-observability.json
        DESTINATION ${_datadir}/dashboards)
# The JetStream stream a fleet delivers into and the consumer that reads it (docs/fleet.md).
install(FILES ${_deploy}/nats/zastava-records.stream.json ${_deploy}/nats/zastava-store.consumer.json
        DESTINATION ${_datadir}/nats)

# The man page zastava-agent(8): --help and --version, with the sections of
# deploy/debian/zastava-agent.h2m, by help2man (scripts/lib.sh installs it).
find_program(HELP2MAN help2man)
if(HELP2MAN)
  set(_man ${CMAKE_CURRENT_BINARY_DIR}/zastava-agent.8)
  add_custom_command(
    OUTPUT ${_man}.gz
    COMMAND ${HELP2MAN} --no-info --section 8 --include ${_deploy}/debian/zastava-agent.h2m
            --output ${_man} $<TARGET_FILE:zastava-agent>
    COMMAND gzip -9nf ${_man}
    DEPENDS zastava-agent ${_deploy}/debian/zastava-agent.h2m
    COMMENT "Making the man page zastava-agent(8)"
    VERBATIM)
  add_custom_target(zastava_manpage ALL DEPENDS ${_man}.gz)
  install(FILES ${_man}.gz DESTINATION ${CMAKE_INSTALL_MANDIR}/man8)
else()
  message(STATUS "help2man not found: no man page is made, and the package has none")
endif()

# The package's maintainer: whoever builds and ships it, "Name <email>". It is the Maintainer
# field of the .deb and the trailer of its changelog. Set it when configuring the build tree:
# -DZASTAVA_DEB_MAINTAINER="Jane Doe <jane@example.org>", or export DEBFULLNAME and DEBEMAIL
# (as for dch) before cmake first runs. Without either, the package says it is a local build
# with no address to write to (.invalid, RFC 2606), and cmake says how to set it.
set(_local_build_maintainer "zastava-agent local build <local-build@zastava-agent.invalid>")
if("$ENV{DEBEMAIL}" MATCHES "<.+@.+>")  # dch's other form: DEBEMAIL="Name <email>"
  set(_maintainer "$ENV{DEBEMAIL}")
elseif(NOT "$ENV{DEBFULLNAME}" STREQUAL "" AND NOT "$ENV{DEBEMAIL}" STREQUAL "")
  set(_maintainer "$ENV{DEBFULLNAME} <$ENV{DEBEMAIL}>")
else()
  set(_maintainer ${_local_build_maintainer})
endif()
set(ZASTAVA_DEB_MAINTAINER "${_maintainer}" CACHE STRING
    "Maintainer of the .deb, \"Name <email>\": its Maintainer field and changelog trailer")
if("${ZASTAVA_DEB_MAINTAINER}" STREQUAL "${_local_build_maintainer}")
  message(STATUS "Package maintainer: ${ZASTAVA_DEB_MAINTAINER} (set -DZASTAVA_DEB_MAINTAINER="
                 "\"Name <email>\", or DEBFULLNAME and DEBEMAIL, to ship it)")
endif()

# Documentation keeps the repository's layout, so README.md's links to docs/ still work.
install(FILES ${PROJECT_SOURCE_DIR}/README.md ${PROJECT_SOURCE_DIR}/CONTRIBUTING.md ${_deploy}/debian/copyright
        DESTINATION ${_docdir})
file(GLOB _docs ${PROJECT_SOURCE_DIR}/docs/*.md)
install(FILES ${_docs} ${PROJECT_SOURCE_DIR}/docs/record-schema.json DESTINATION ${_docdir}/docs)
# A native package's changelog is changelog.gz, compressed without a timestamp (gzip -n); its
# trailers name ZASTAVA_DEB_MAINTAINER.
configure_file(${_deploy}/debian/changelog.in changelog @ONLY)  # re-run on change
execute_process(COMMAND gzip -9nf ${CMAKE_CURRENT_BINARY_DIR}/changelog COMMAND_ERROR_IS_FATAL ANY)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/changelog.gz DESTINATION ${_docdir})

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME ${PROJECT_NAME})
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)
set(CPACK_PACKAGE_CONTACT ${ZASTAVA_DEB_MAINTAINER})
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "read-only Docker runtime observation agent")
# The long description; CPack puts the summary above it and " ." for the empty line.
set(CPACK_DEBIAN_PACKAGE_DESCRIPTION "\
zastava-agent watches the Docker Engine through its API socket, using only
read-only GET requests, and records every container lifecycle transition,
with image identity, security posture and process evidence from /proc, as a
hash-chained record in rotating NDJSON files and a SQLite buffer. It resumes
after restarts without losing or repeating events, and serves /healthz,
/readyz, /livez and Prometheus /metrics.

The package ships a hardened systemd unit (not enabled: choose an engine
access mode first, see /usr/share/doc/zastava-agent/docs/operations.md), an
AppArmor profile, SELinux policy sources, Prometheus alert rules and a
Grafana dashboard.")
set(CPACK_DEBIAN_PACKAGE_SECTION admin)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
# adduser: postinst's fallback when systemd-sysusers is missing.
set(CPACK_DEBIAN_PACKAGE_DEPENDS adduser)
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS docker.io)
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "apparmor, selinux-policy-dev")
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA ${_deploy}/debian/conffiles ${_deploy}/debian/postinst
                                       ${_deploy}/debian/prerm ${_deploy}/debian/postrm)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
include(CPack)
