// Library version (SemVer) of qlm.
#pragma once

#define QLM_VERSION_MAJOR 0
#define QLM_VERSION_MINOR 1
#define QLM_VERSION_PATCH 0
#define QLM_VERSION_STRING "0.1.0"
