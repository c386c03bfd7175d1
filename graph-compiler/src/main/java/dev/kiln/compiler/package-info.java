/**
 * The graph compiler: {@link dev.kiln.compiler.CompileOptions} (in-flight window, slot sizes, timeouts,
 * idling, what to do when an actor dies), the {@link dev.kiln.compiler.ExecutionPlan} a compile produces
 * (one schedule per actor, one channel per edge; printable as text or Graphviz), and
 * {@link dev.kiln.compiler.GraphCompileException}, which names the node and the fix when a graph is
 * refused.
 */
package dev.kiln.compiler;
