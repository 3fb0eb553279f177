# DGM_CORE_ONLY=ON: CMakeLists.txt includes this right after the dgm_tensor and dgm_autograd
# libraries and stops, so nothing above autograd is built and zlib, stb and nlohmann-json are not
# needed. This is the build scripts/test-arm.sh cross-compiles for aarch64 and runs under qemu-user.
#
# The tests: dgm_core_tests, made of every tests/test_*.cpp whose dgm includes are all
# <dgm/tensor/...> or <dgm/autograd/...> (found by reading the files, as tests/test_architecture.cpp
# does, so a new tensor or autograd test file joins without a line here). A test that needs a layer
# above belongs in that layer's test file.
if(NOT DGM_BUILD_TESTS)
  return()
endif()
enable_testing()

if(DGM_GTEST_SOURCE_DIR)
  # Debian's libgtest-dev ships the sources in /usr/src/googletest; a cross build has no libgtest for
  # its target, so GoogleTest (and GoogleMock, for its matchers) is built here with the same compiler.
  set(INSTALL_GTEST OFF CACHE BOOL "" FORCE)
  set(BUILD_GMOCK ON CACHE BOOL "" FORCE)
  add_subdirectory(${DGM_GTEST_SOURCE_DIR} ${CMAKE_CURRENT_BINARY_DIR}/googletest EXCLUDE_FROM_ALL)
  foreach(lib gtest gtest_main gmock)  # GoogleTest 1.11+ names them GTest::... itself
    if(NOT TARGET GTest::${lib})
      add_library(GTest::${lib} ALIAS ${lib})
    endif()
  endforeach()
else()
  find_package(GTest REQUIRED)
endif()

set(core_test_srcs "")
file(GLOB all_test_srcs CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/tests/test_*.cpp)
foreach(src IN LISTS all_test_srcs)
  set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${src})  # an include changed: sort again
  file(STRINGS ${src} includes REGEX "^[ \t]*#[ \t]*include[ \t]*[<\"]dgm/")
  set(core TRUE)
  foreach(line IN LISTS includes)
    if(NOT line MATCHES "[<\"]dgm/(tensor|autograd)/")
      set(core FALSE)
    endif()
  endforeach()
  get_filename_component(stem ${src} NAME_WE)
  if(core AND (NOT DGM_CORE_TESTS OR stem IN_LIST DGM_CORE_TESTS))
    list(APPEND core_test_srcs ${src})
  endif()
endforeach()
list(LENGTH core_test_srcs n)
if(n EQUAL 0)
  message(FATAL_ERROR "dgm: DGM_CORE_TESTS='${DGM_CORE_TESTS}' names no core test file (tests/test_*.cpp of tensor and autograd)")
endif()
message(STATUS "dgm: DGM_CORE_ONLY, ${n} test files: tensor and autograd only")

add_executable(dgm_core_tests ${core_test_srcs})
target_link_libraries(dgm_core_tests PRIVATE dgm_tensor dgm_autograd dgm_options GTest::gtest GTest::gmock GTest::gtest_main)
include(GoogleTest)
# Under an emulator (CMAKE_CROSSCOMPILING_EMULATOR) both the listing and the tests run through it.
gtest_discover_tests(dgm_core_tests DISCOVERY_TIMEOUT 120 PROPERTIES ENVIRONMENT "OMP_NUM_THREADS=2;OMP_WAIT_POLICY=passive")
