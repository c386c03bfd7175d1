package dev.kiln.graph;

/**
 * Two values: the result of a graph compiled on {@link Graph#outputs(Node, Node)}, or the input of a graph
 * built on {@link Graph#input2()}.
 *
 * @param first  the first value
 * @param second the second value
 * @param <A>    the first value's type
 * @param <B>    the second value's type
 */
public record Tuple2<A, B>(A first, B second) {
}
