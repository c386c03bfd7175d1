/**
 * Internal to Kiln: what a runtime does to graph objects that user code must not ({@link
 * dev.kiln.graph.internal.GraphInternals}). Exported only to Kiln's own modules.
 */
package dev.kiln.graph.internal;
