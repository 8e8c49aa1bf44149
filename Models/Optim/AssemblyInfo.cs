using System.Runtime.CompilerServices;

// The optimizer tests shrink the norm's chunk size to reach the multi-chunk reduction with small slabs.
[assembly: InternalsVisibleTo("Hal.Models.Tests")]
