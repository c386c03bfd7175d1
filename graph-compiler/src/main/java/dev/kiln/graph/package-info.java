/**
 * Building a graph: {@link dev.kiln.graph.Graph#input()} for the input, {@link dev.kiln.graph.ActorRef#bind}
 * to record a call of an actor's method (a {@code Method0} to {@code Method8} reference) on nodes and
 * constants, {@link dev.kiln.graph.Graph#outputs} for several outputs, and
 * {@link dev.kiln.graph.Node#withTransport} to ask for a {@link dev.kiln.graph.Transport} on an edge.
 * Binding records a {@link dev.kiln.graph.Node}; it calls nothing. {@code Kiln.compile} turns the nodes
 * into a plan.
 */
package dev.kiln.graph;
