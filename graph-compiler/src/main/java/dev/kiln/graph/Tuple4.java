package dev.kiln.graph;

/**
 * Four values: the result of a graph compiled on {@link Graph#outputs(Node, Node, Node, Node)}, or the input
 * of a graph built on {@link Graph#input4()}.
 *
 * @param first  the first value
 * @param second the second value
 * @param third  the third value
 * @param fourth the fourth value
 * @param <A>    the first value's type
 * @param <B>    the second value's type
 * @param <C>    the third value's type
 * @param <D>    the fourth value's type
 */
public record Tuple4<A, B, C, D>(A first, B second, C third, D fourth) {
}
