/**
 * Kiln's runtime API: {@link dev.kiln.Kiln} (a runtime: actors, {@code compile}, the dynamic
 * {@code call} path), {@link dev.kiln.CompiledGraph} and {@link dev.kiln.GraphFuture} (running a compiled
 * graph), the options {@link dev.kiln.KilnOptions} and {@link dev.kiln.ActorOptions} (where an actor
 * lives: a thread of this JVM, a worker JVM, a joined worker on another host, a GPU),
 * {@link dev.kiln.KilnWorker} (a worker that joins a driver), {@link dev.kiln.Outputs} (zero-copy
 * results) and the exceptions an execution or a graph can fail with.
 *
 * <p>Graphs are built with {@code dev.kiln.graph}; {@code dev.kiln.compiler} holds the compile options
 * and the plan; values may be {@code dev.kiln.tensor} tensors. The classes of {@code dev.kiln.executor}
 * and {@code dev.kiln.executor.wire} are Kiln's implementation, not API.
 */
package dev.kiln;
