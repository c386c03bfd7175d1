package dev.kiln.graph;

/**
 * Three values: the result of a graph compiled on {@link Graph#outputs(Node, Node, Node)}, or the input of a
 * graph built on {@link Graph#input3()}.
 *
 * @param first  the first value
 * @param second the second value
 * @param third  the third value
 * @param <A>    the first value's type
 * @param <B>    the second value's type
 * @param <C>    the third value's type
 */
public record Tuple3<A, B, C>(A first, B second, C third) {
}
