/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* dpiped's D-Bus names, in one place for every program that serves or calls them (dpiped,
 * dpipectl, tests' helpers). They are the public API documented in org.dpipe.Pipeline1(5); the
 * D-Bus policy (dbus/org.dpipe.Pipeline1.conf) and the polkit policy
 * (dbus/org.dpipe.pipeline1.policy) name them too, and must be changed with them. */

#define DPIPED_BUS_NAME "org.dpipe.Pipeline1"
#define DPIPED_BUS_PATH "/org/dpipe/Pipeline1"
#define DPIPED_BUS_SOURCE_PREFIX "/org/dpipe/Pipeline1/source"
#define DPIPED_MANAGER_INTERFACE "org.dpipe.Pipeline1.Manager"
#define DPIPED_SOURCE_INTERFACE "org.dpipe.Pipeline1.Source"
#define DPIPED_BUS_SINK_PREFIX "/org/dpipe/Pipeline1/sink"
#define DPIPED_SINK_INTERFACE "org.dpipe.Pipeline1.Sink"
#define DPIPED_POLKIT_ACTION "org.dpipe.pipeline1.manage"

#define BUS_ERROR_SOURCE_EXISTS "org.dpipe.Pipeline1.Error.SourceExists"
#define BUS_ERROR_NO_SUCH_SOURCE "org.dpipe.Pipeline1.Error.NoSuchSource"
#define BUS_ERROR_UNKNOWN_TYPE "org.dpipe.Pipeline1.Error.UnknownType"
#define BUS_ERROR_SOURCE_DEFINED_BY_FILE "org.dpipe.Pipeline1.Error.SourceDefinedByFile"
#define BUS_ERROR_SINK_EXISTS "org.dpipe.Pipeline1.Error.SinkExists"
#define BUS_ERROR_NO_SUCH_SINK "org.dpipe.Pipeline1.Error.NoSuchSink"
#define BUS_ERROR_SINK_DEFINED_BY_FILE "org.dpipe.Pipeline1.Error.SinkDefinedByFile"
