/**
 * Kiln's graph builder, value types and compiler: build a graph of actor method calls ({@link dev.kiln.graph}),
 * the values it passes ({@link dev.kiln.tensor}) and how it compiles into an execution plan
 * ({@link dev.kiln.compiler}). Depends on nothing but {@code java.base}.
 */
@SuppressWarnings("module") // the qualified exports name modules built after this one
module dev.kiln.graphcompiler {
    exports dev.kiln.graph;
    exports dev.kiln.tensor;
    exports dev.kiln.compiler;
    // Creates actor refs and claims nodes for a runtime: Kiln's own modules only (the transports' tests build
    // actor refs too).
    exports dev.kiln.graph.internal to dev.kiln.executor, dev.kiln.transports;
}
